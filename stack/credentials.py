"""The stack's Alertmanager credential: made at first start in the data folder, kept across runs.

Alertmanager 0.25 answers any web page (``Access-Control-Allow-Origin: *``) and has no CORS flag, so
any page the user opened could forge or resolve alerts through ``POST /api/v2/alerts``. It does take
``--web.config.file`` with HTTP basic auth, whose users it stores as bcrypt hashes only. The stack
writes, in its data folder (``var/``):

- ``alertmanager.password``: a random password, readable by its owner only;
- ``alertmanager-web.yml``: Alertmanager's ``--web.config.file`` (the user and the password's hash);
- ``amtool.yml``: ``amtool --http.config.file`` (the user and the password file).

Prometheus' ``alerting`` and its scrape of Alertmanager read the same password file. A browser's
request carries no such credential, so a foreign page's POST gets 401.

    python -m stack credentials --data-dir DIR   # what the compose stack's one-shot service runs
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import yaml

from streamwatch.atomic import atomic_write_text
from streamwatch.errors import UserError

USER = "streamwatch"
PASSWORD_FILE = "alertmanager.password"
WEB_CONFIG_FILE = "alertmanager-web.yml"
AMTOOL_CONFIG_FILE = "amtool.yml"
# bcrypt's cost: Alertmanager checks the hash on every request (Prometheus posts alerts every few
# seconds), so a moderate one; the password is 32 random bytes, not something a person chose.
BCRYPT_ROUNDS = 10


@dataclass(frozen=True)
class Credential:
    user: str
    password: str
    password_file: Path
    web_config: Path
    amtool_config: Path

    @property
    def auth(self) -> tuple[str, str]:
        """For ``requests``: ``auth=credential.auth``."""
        return self.user, self.password


def ensure(data_dir: Path) -> Credential:
    """The credential of the stack keeping its data in ``data_dir``: read, or made on first use.

    The web config is rewritten only when it is missing or no longer matches the password, so a
    restart keeps both. A folder that cannot be written is a ``UserError``.
    """
    data_dir = Path(data_dir)
    pw_path = data_dir / PASSWORD_FILE
    web_path = data_dir / WEB_CONFIG_FILE
    amtool_path = data_dir / AMTOOL_CONFIG_FILE
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        password = _read_password(pw_path)
        if password is None:
            password = secrets.token_urlsafe(32)
            atomic_write_text(pw_path, password + "\n")
        os.chmod(pw_path, 0o600)
        if not _web_config_matches(web_path, password):
            digest = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=BCRYPT_ROUNDS)).decode()
            atomic_write_text(web_path, yaml.safe_dump({"basic_auth_users": {USER: digest}}))
            os.chmod(web_path, 0o600)
        amtool = {"basic_auth": {"username": USER, "password_file": str(pw_path.resolve())}}
        atomic_write_text(amtool_path, yaml.safe_dump(amtool))
    except OSError as exc:
        raise UserError(f"cannot write the Alertmanager credential in {data_dir}: {exc.strerror}") from None
    return Credential(USER, password, pw_path, web_path, amtool_path)


def _read_password(path: Path) -> str | None:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError):
        return None  # unreadable or damaged: make a new one
    return text or None


def _web_config_matches(path: Path, password: str) -> bool:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        digest = doc["basic_auth_users"][USER]
        return bool(bcrypt.checkpw(password.encode(), digest.encode()))
    except (OSError, ValueError, TypeError, KeyError, AttributeError, yaml.YAMLError):
        return False
