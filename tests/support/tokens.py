"""The realm of test tenants, and signing keys, JWKS documents and hand-made tokens."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tally.dev import keys as devkeys

REALM = devkeys.DEV_REALM  # the realm every test tenant and dev token belongs to


@dataclass(frozen=True)
class SigningKey:
    """A private key with its public JWK."""

    private: Any
    kid: str
    alg: str

    @property
    def jwk(self) -> dict[str, Any]:
        algorithms = jwt.algorithms
        algorithm = algorithms.RSAAlgorithm if self.alg == "RS256" else algorithms.ECAlgorithm
        public = json.loads(algorithm.to_jwk(self.private.public_key()))
        public.update({"kid": self.kid, "use": "sig", "alg": self.alg})
        return public

    @property
    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def sign(self, claims: dict[str, Any], kid: str | None = "same", alg: str | None = None) -> str:
        headers = {} if kid is None else {"kid": self.kid if kid == "same" else kid}
        return jwt.encode(claims, self.private, algorithm=alg or self.alg, headers=headers)


def rsa_key(kid: str = "rsa-1") -> SigningKey:
    return SigningKey(rsa.generate_private_key(public_exponent=65537, key_size=2048), kid, "RS256")


def ec_key(kid: str = "ec-1") -> SigningKey:
    return SigningKey(ec.generate_private_key(ec.SECP256R1()), kid, "ES256")


def jwks(*keys: SigningKey) -> dict[str, Any]:
    return {"keys": [key.jwk for key in keys]}


def write_jwks(path: Path, *keys: SigningKey) -> str:
    path.write_text(json.dumps(jwks(*keys)))
    return str(path)


def claims(issuer: str, audience: str | None = None, **extra: Any) -> dict[str, Any]:
    """Valid claims for one hour: user-1, role ticket_user, no tenant unless given."""
    now = int(time.time())
    body: dict[str, Any] = {"iss": issuer, "sub": "user-1", "iat": now, "nbf": now,
                            "exp": now + 3600, "realm_access": {"roles": ["ticket_user"]}}
    if audience is not None:
        body["aud"] = audience
    body.update(extra)
    return {name: value for name, value in body.items() if value is not None}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_token(body: dict[str, Any], kid: str | None = None) -> str:
    """A token with alg "none" and an empty signature."""
    header = {"alg": "none", "typ": "JWT", **({"kid": kid} if kid else {})}
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(body).encode())}."


def hs256_with_public_key(key: SigningKey, body: dict[str, Any]) -> str:
    """The classic confusion attack: HMAC-signed with the issuer's public key as the secret."""
    header = {"alg": "HS256", "typ": "JWT", "kid": key.kid}
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(body).encode())}"
    mac = hmac.new(key.public_pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"
