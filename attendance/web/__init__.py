"""The HTTP face of the product: the API, the pages, the sockets, who is calling, errors and headers."""
