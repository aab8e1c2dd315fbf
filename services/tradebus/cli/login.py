"""`tradebus login <venue>`: the daily login of a venue whose access tokens last a day
(Zerodha, Fyers), as a script runs it (connector/login.py; docs/venues.md "Session lifecycle").

Without a code it prints the venue's login page for the app: a person logs in there, and
the venue's redirect carries the code. With it, the code is exchanged for the day's access
token, which is written into the secrets file (mode 0600, other keys kept): running
connectors pick it up without a restart. The token is never printed.

A venue whose SDK lives in its own environment (Fyers) is logged in from there: this
command runs itself again with that environment's python.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from tradebus.shared.config import EXIT_CONFIG, ConfigError


def add_login_command(commands: Any) -> None:
    login = commands.add_parser(
        "login", help="log a venue with daily access tokens in: exchange the login redirect's code for the day's "
                      "token and write it into the secrets file")
    login.add_argument("venue", help="zerodha or fyers")
    code = login.add_mutually_exclusive_group()
    code.add_argument("--request-token", dest="code", help="Zerodha: the request_token of Kite's login redirect")
    code.add_argument("--auth-code", dest="code", help="Fyers: the auth_code of Fyers' login redirect")
    login.add_argument("--secrets-file", help="the file to write the token to (default: the one TRADEBUS_SECRETS_FILE "
                                              "names, which connectors read)")
    login.add_argument("--url", help="the venue's API root (an emulator or a proxy; default: the venue's own)")
    login.add_argument("--redirect-uri", help="Fyers: the app's registered redirect URL (for the login page)")


def login(args: argparse.Namespace) -> int:
    from tradebus.services.connector.credentials import secret_variable
    from tradebus.services.connector.login import LoginRefused, app_credentials, log_in, login_flow
    from tradebus.services.connector.venuespecs import venue_spec

    from .up import connector_python

    try:
        spec = venue_spec(args.venue)
        if not spec.in_this_environment:  # its SDK is in its own environment: log in from there
            python = connector_python(spec.name)
            os.execv(python, [python, "-m", "tradebus.cli.main", *sys.argv[1:]])
        flow = login_flow(spec.name)
        if args.code is None:
            api_key, _ = app_credentials(spec.name)
            print(f"1. open {flow.login_url(api_key, args.url, args.redirect_uri)} and log in;")
            print(f"2. the venue redirects to the app's redirect URL with {flow.code_name}=<code>;")
            option = "--request-token" if flow.code_name == "request_token" else "--auth-code"
            print(f"3. within a few minutes: tradebus login {spec.name} {option} <code>")
            return 0
        written = log_in(spec.name, args.code, url=args.url, secrets_file=args.secrets_file)
    except (ConfigError, ValueError) as exc:
        print(f"tradebus login: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except LoginRefused as exc:
        print(f"tradebus login: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {secret_variable(spec.name)} to {written} (mode 0600); running {spec.name} connectors that read "
          f"it pick the new session up within their token_check_interval")
    return 0
