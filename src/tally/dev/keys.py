"""A local signing key and realm for development and tests; never used in production."""
from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

DEV_REALM = "tally-dev"
DEV_ISSUER = "https://tally.invalid/realms/tally-dev"
DEV_AUDIENCE = "tally"
DEV_KID = "tally-dev-1"


def _paths(var_dir: str) -> tuple[Path, Path, Path]:
    base = Path(var_dir) / "dev"
    return base / "private.pem", base / "jwks.json", base / "realms.json"


def ensure_dev_realm(var_dir: str) -> str:
    """Create the dev key, its JWKS and a realms file naming realm 'tally-dev'; return that file."""
    private_path, jwks_path, realms_path = _paths(var_dir)
    if not private_path.exists():
        private_path.parent.mkdir(parents=True, exist_ok=True)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
        jwk.update({"kid": DEV_KID, "use": "sig", "alg": "RS256"})
        jwks_path.write_text(json.dumps({"keys": [jwk]}, indent=2))
    if not realms_path.exists():
        realms = {DEV_REALM: {"issuer": DEV_ISSUER, "audience": DEV_AUDIENCE,
                              "jwks_file": str(jwks_path.resolve())}}
        realms_path.write_text(json.dumps(realms, indent=2))
    return str(realms_path.resolve())


def dev_token(var_dir: str, *, tenant: str, user: str, roles: list[str],
              teams: list[str] | None = None, ttl: int = 3600) -> str:
    """A token as the dev realm's issuer would sign it."""
    ensure_dev_realm(var_dir)
    private_path, _, _ = _paths(var_dir)
    now = int(time.time())
    claims = {"iss": DEV_ISSUER, "aud": DEV_AUDIENCE, "sub": user, "iat": now, "nbf": now,
              "exp": now + ttl, "jti": str(uuid.uuid4()), "tenant_id": tenant,
              "realm_access": {"roles": roles}, "teams": teams or []}
    return jwt.encode(claims, private_path.read_bytes(), algorithm="RS256",
                      headers={"kid": DEV_KID})
