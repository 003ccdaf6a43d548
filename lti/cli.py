"""`flask --app app platform ...` and `flask --app app keys ...`: install platforms by hand, create and rotate keys."""
from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

from extensions import db
from lti.invitations import create_invite, invite_url
from lti.models import Deployment, Registration
from lti.outbound import OutboundError, check_platform_url, url_host

platform_cli = AppGroup("platform", help="Register LTI platforms by hand.")
keys_cli = AppGroup("keys", help="The tool's signing keys.")


@platform_cli.command("add")
@click.option("--issuer", required=True, help="The platform's issuer (iss), e.g. https://canvas.instructure.com")
@click.option("--client-id", required=True, help="The client id the platform gave this tool")
@click.option("--auth-login-url", required=True, help="OIDC authorization endpoint")
@click.option("--token-url", required=True, help="OAuth2 token endpoint (for AGS and NRPS)")
@click.option("--key-set-url", required=True, help="The platform's public JWKS URL")
@click.option("--deployment-id", "deployment_ids", multiple=True, help="A deployment id (repeatable)")
@click.option("--audience", default=None, help="Audience of token requests, when not the token URL")
@click.option("--name", default="", help="A name to recognise the platform by")
@click.option("--service-host", "service_hosts", multiple=True,
              help="Another host where the platform's AGS/NRPS services and course pages live (repeatable), "
                   "e.g. school.instructure.com for Canvas Cloud")
@click.option("--no-auto-onboard", is_flag=True, help="Refuse launches from deployment ids not listed here")
def platform_add(issuer, client_id, auth_login_url, token_url, key_set_url, deployment_ids, audience, name,
                 service_hosts, no_auto_onboard):
    """Add (or update) a platform registration and its deployments."""
    allow = current_app.config["OUTBOUND_ALLOW_NETWORKS"]
    for label, url in (("--issuer", issuer), ("--auth-login-url", auth_login_url), ("--token-url", token_url),
                       ("--key-set-url", key_set_url)):
        try:
            check_platform_url(url, allow)
        except OutboundError as exc:
            raise click.BadParameter(f"{url}: {exc.reason}", param_hint=label) from exc
    if audience and url_host(audience) != url_host(token_url):
        raise click.BadParameter("the audience must be on the token URL's host", param_hint="--audience")
    row = db.session.scalar(db.select(Registration).filter_by(issuer=issuer, client_id=client_id))
    created = row is None
    row = row or Registration(issuer=issuer, client_id=client_id)
    row.auth_login_url, row.auth_token_url, row.key_set_url = auth_login_url, token_url, key_set_url
    row.auth_audience, row.name, row.active = audience, name or row.name or issuer, True
    row.pending_approval = False
    row.service_hosts = sorted({h.strip().lower() for h in service_hosts if h.strip()}) or list(row.service_hosts or [])
    row.auto_onboard_deployments = not no_auto_onboard
    db.session.add(row)
    db.session.flush()
    known = {d.deployment_id for d in row.deployments}
    for deployment_id in deployment_ids:
        if deployment_id not in known:
            db.session.add(Deployment(registration=row, deployment_id=deployment_id))
    db.session.commit()
    click.echo(f"{'Added' if created else 'Updated'} platform {row.id}: {issuer} client {client_id}")


@platform_cli.command("list")
def platform_list():
    """List registrations with their deployments."""
    rows = db.session.scalars(db.select(Registration).order_by(Registration.id)).all()
    if not rows:
        click.echo("No platforms registered.")
    for row in rows:
        state = "pending" if row.pending_approval else "active" if row.active else "inactive"
        click.echo(f"{row.id}\t{state}\t{row.issuer}\tclient={row.client_id}\t{row.name}")
        for dep in row.deployments:
            click.echo(f"\tdeployment {dep.deployment_id}\t{'active' if dep.active else 'inactive'}")


@platform_cli.command("deactivate")
@click.option("--issuer", required=True)
@click.option("--client-id", required=True)
@click.option("--deployment-id", default=None, help="Only this deployment; without it the whole registration")
def platform_deactivate(issuer, client_id, deployment_id):
    """Stop accepting launches from a registration or one of its deployments."""
    row = db.session.scalar(db.select(Registration).filter_by(issuer=issuer, client_id=client_id))
    if row is None:
        raise click.ClickException(f"No platform {issuer} with client id {client_id}")
    if deployment_id:
        dep = next((d for d in row.deployments if d.deployment_id == deployment_id), None)
        if dep is None:
            raise click.ClickException(f"No deployment {deployment_id} on that platform")
        dep.active = False
    else:
        row.active = False
    db.session.commit()
    click.echo("Deactivated.")


@platform_cli.command("approve")
@click.option("--issuer", required=True)
@click.option("--client-id", required=True)
def platform_approve(issuer, client_id):
    """Accept launches from a platform that registered itself while open registration was on."""
    row = db.session.scalar(db.select(Registration).filter_by(issuer=issuer, client_id=client_id))
    if row is None:
        raise click.ClickException(f"No platform {issuer} with client id {client_id}")
    row.active, row.pending_approval = True, False
    db.session.commit()
    click.echo(f"Approved platform {row.id}: {issuer} client {client_id}")


@platform_cli.command("invite")
@click.option("--expires-hours", type=float, default=None, help="How long the link stays usable (default 7 days)")
@click.option("--note", default="", help="Whom the invitation is for, shown in the audit log")
def platform_invite(expires_hours, note):
    """Make a single-use registration link to paste into Moodle or Canvas as the tool URL."""
    hours = expires_hours if expires_hours is not None else current_app.config["LTI_INVITE_HOURS"]
    try:
        token = create_invite(hours, note=note, created_by="cli")
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--expires-hours") from exc
    base = current_app.config.get("TOOL_BASE_URL") or "http://127.0.0.1:5000"
    click.echo(f"Single-use registration link, valid for {hours:g} hours. Paste it into the LMS as the tool URL:")
    click.echo(invite_url(base, token))


@keys_cli.command("create")
def keys_create():
    """Create the first signing key when there is none; with one already there, change nothing."""
    ring = current_app.extensions["lti_keys"]
    ring.ensure()  # idempotent and locked: a release step may run it on every deploy, from several hosts
    click.echo(f"Signing key {ring.current().kid} in {ring.directory}")


@keys_cli.command("rotate")
@click.option("--grace-days", type=float, default=None, help="How long the old key stays published")
def keys_rotate(grace_days):
    """Make a new signing key; keep the old one published for the grace period."""
    ring = current_app.extensions["lti_keys"]
    days = grace_days if grace_days is not None else current_app.config["KEY_ROTATION_GRACE_DAYS"]
    kid = ring.rotate(days * 86400)
    click.echo(f"New signing key {kid}; previous keys stay published for {days:g} days.")


@keys_cli.command("retire")
def keys_retire():
    """Delete keys whose grace period is over."""
    gone = current_app.extensions["lti_keys"].retire_expired()
    click.echo(f"Retired {len(gone)} key(s). " + " ".join(gone))


@keys_cli.command("list")
def keys_list():
    """List published keys."""
    for key in current_app.extensions["lti_keys"].keys():
        click.echo(f"{key.kid}\t{'current' if key.retire_at is None else 'retiring'}")
