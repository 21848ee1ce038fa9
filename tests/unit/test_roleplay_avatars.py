"""Avatars: links fetched over https from allowed addresses only, redirects checked hop by
hop, sizes bounded; every image stored as a small PNG.

Local TLS servers stand in for the internet: ``127.0.0.2`` plays a public host (the
policy below allows that one address), ``127.0.0.1`` stays private and records every
request, so a test can show it was never reached.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import io
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from PIL import Image

from cogs.music.urls import AddressPolicy
from cogs.roleplay import avatars
from cogs.roleplay.avatars import MAX_DOWNLOAD, MAX_SIDE, AvatarFetcher, to_avatar
from cogs.roleplay.errors import RoleplayError
from utils.errors import BotError

PUBLIC = "127.0.0.2"


class StandInPublic(AddressPolicy):
    """The real policy, with 127.0.0.2 counted as a public address."""

    def allows(self, host: str, address: str) -> bool:
        return address == PUBLIC or super().allows(host, address)


def image(size: tuple[int, int] = (600, 300), kind: str = "PNG", mode: str = "RGBA") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size).save(out, format=kind)
    return out.getvalue()


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A self-signed certificate for both addresses: (server context, client context)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(a)) for a in (PUBLIC, "127.0.0.1")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder: Path = tmp_path_factory.mktemp("tls")
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    client = ssl.create_default_context(cafile=str(folder / "cert.pem"))
    return server, client


class Site:
    """A TLS server that records paths; ``?to=`` redirects, some paths misbehave."""

    def __init__(self, host: str, tls: ssl.SSLContext) -> None:
        self.host, self.tls = host, tls
        self.requests: list[str] = []
        self.runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self.answer)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, self.host, 0, ssl_context=self.tls).start()
        self.port = self.runner.addresses[0][1]

    async def answer(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request.path_qs)
        if "to" in request.query:  # as given: a server may send a malformed Location
            return web.Response(status=302, headers={"Location": request.query["to"]})
        if request.path == "/loop":
            raise web.HTTPFound("/loop")
        if request.path == "/slow-loop":  # each hop well within a request's time limit
            await asyncio.sleep(0.4)
            raise web.HTTPFound("/slow-loop")
        if request.path == "/big":  # no Content-Length: only streaming can stop it
            response = web.StreamResponse(headers={"Content-Type": "image/png"})
            await response.prepare(request)
            await response.write(image()[:16])
            for _ in range(MAX_DOWNLOAD // 65536 + 2):
                await response.write(b"\0" * 65536)
            return response
        if request.path == "/compressing.png" and "gzip" in request.headers.get(
            "Accept-Encoding", ""
        ):  # a server that compresses whatever the client says it accepts
            body = gzip.compress(image())
            headers = {"Content-Type": "image/png", "Content-Encoding": "gzip"}
            return web.Response(body=body, headers=headers)
        if request.path == "/text":
            return web.Response(text="<html>hi</html>", content_type="text/html")
        if request.path == "/fake.png":
            return web.Response(body=b"not an image at all", content_type="image/png")
        return web.Response(body=image(), content_type="image/png")


@pytest.fixture
async def sites(
    tls: tuple[ssl.SSLContext, ssl.SSLContext],
) -> AsyncIterator[tuple[Site, Site]]:
    public, internal = Site(PUBLIC, tls[0]), Site("127.0.0.1", tls[0])
    await public.start()
    await internal.start()
    yield public, internal
    for site in (public, internal):
        assert site.runner is not None
        await site.runner.cleanup()


@pytest.fixture
async def fetcher(tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> AsyncIterator[AvatarFetcher]:
    fetcher = AvatarFetcher(StandInPublic(), tls=tls[1])
    await fetcher.start()
    yield fetcher
    await fetcher.close()


async def test_a_public_https_image_is_fetched_and_shrunk(
    fetcher: AvatarFetcher, sites: tuple[Site, Site]
) -> None:
    public, _ = sites
    png = await fetcher.fetch(f"{public.url}/a.png")
    with Image.open(io.BytesIO(png)) as stored:
        assert stored.format == "PNG" and stored.size == (MAX_SIDE, MAX_SIDE // 2)


async def test_a_server_that_compresses_what_the_client_accepts_sends_the_image_as_is(
    fetcher: AvatarFetcher, sites: tuple[Site, Site]
) -> None:
    """Downloads are not decompressed (the size limit counts what is stored), so none is
    asked for: else such a server's image would be refused as "not an image"."""
    public, _ = sites
    await fetcher.fetch(f"{public.url}/compressing.png")


async def test_a_redirect_to_another_public_path_is_followed(
    fetcher: AvatarFetcher, sites: tuple[Site, Site]
) -> None:
    public, _ = sites
    await fetcher.fetch(f"{public.url}/start?to=/final.png")
    assert public.requests == ["/start?to=/final.png", "/final.png"]


async def test_private_addresses_are_refused_directly_and_after_a_redirect(
    fetcher: AvatarFetcher, sites: tuple[Site, Site]
) -> None:
    public, internal = sites
    with pytest.raises(BotError, match="private or local"):
        await fetcher.fetch(f"{internal.url}/a.png")
    with pytest.raises(BotError, match="private or local"):
        await fetcher.fetch(f"{public.url}/go?to={internal.url}/a.png")
    with pytest.raises(RoleplayError, match="must start with https"):
        await fetcher.fetch(f"{public.url}/go?to=http://{PUBLIC}:{public.port}/a.png")
    assert internal.requests == []


async def test_a_name_that_turns_private_after_the_check_is_not_connected_to(
    fetcher: AvatarFetcher, sites: tuple[Site, Site], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection resolves through the policy too: a second answer cannot point inward."""
    public, internal = sites
    answers = [PUBLIC, "127.0.0.1"]
    loop = asyncio.get_running_loop()

    async def getaddrinfo(host: str, port: int, **kwargs: Any) -> list[tuple[Any, ...]]:
        address = answers.pop(0) if len(answers) > 1 else answers[0]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)
    with pytest.raises(BotError, match="private or local"):
        await fetcher.fetch(f"https://avatars.test:{internal.port}/a.png")
    assert internal.requests == [] and public.requests == []


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/big", "over 8 MB"),
        ("/text", "not an image"),
        ("/fake.png", "not an image"),
        ("/loop", "redirects too many times"),
    ],
)
async def test_bad_answers_are_refused(
    fetcher: AvatarFetcher, sites: tuple[Site, Site], path: str, message: str
) -> None:
    public, _ = sites
    with pytest.raises(RoleplayError, match=message):
        await fetcher.fetch(f"{public.url}{path}")


async def test_a_chain_of_slow_redirects_ends_within_the_time_limit(
    fetcher: AvatarFetcher, sites: tuple[Site, Site], monkeypatch: pytest.MonkeyPatch
) -> None:
    public, _ = sites
    monkeypatch.setattr(avatars, "FETCH_TIMEOUT", 1.0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(RoleplayError, match="took too long to download"):
        await fetcher.fetch(f"{public.url}/slow-loop")
    assert loop.time() - started < 2.0


@pytest.mark.parametrize(
    "link",
    [
        "https://[::1",
        "https://example.com:99999/a.png",
        "https://example.com:abc/a.png",
        "https:///a.png",
    ],
)
async def test_malformed_links_are_refused_unfetched(fetcher: AvatarFetcher, link: str) -> None:
    with pytest.raises(RoleplayError, match=r"^That is not a valid avatar link\.$"):
        await fetcher.fetch(link)


async def test_a_malformed_redirect_is_refused(
    fetcher: AvatarFetcher, sites: tuple[Site, Site]
) -> None:
    public, _ = sites
    with pytest.raises(RoleplayError, match=r"^That is not a valid avatar link\.$"):
        await fetcher.fetch(f"{public.url}/go?to=https://[::1")
    assert public.requests == ["/go?to=https://%5B::1"]


async def test_a_link_with_credentials_is_refused_unfetched_and_unlogged(
    fetcher: AvatarFetcher, sites: tuple[Site, Site], caplog: pytest.LogCaptureFixture
) -> None:
    """As /play does: the link would reach the log (and its host) with them."""
    public, _ = sites
    caplog.set_level("DEBUG")
    secret = f"https://user:hunter2@{PUBLIC}:{public.port}/a.png"
    with pytest.raises(RoleplayError, match="user name or password"):
        await fetcher.fetch(secret)
    with pytest.raises(RoleplayError, match="user name or password"):
        await fetcher.fetch(f"{public.url}/go?to={secret}")
    assert public.requests == [f"/go?to={secret}"]
    assert "hunter2" not in caplog.text


def test_images_become_bounded_pngs() -> None:
    for kind, mode in (("JPEG", "RGB"), ("GIF", "P"), ("WEBP", "RGB"), ("PNG", "LA")):
        with Image.open(io.BytesIO(to_avatar(image((100, 900), kind, mode)))) as stored:
            assert stored.format == "PNG" and max(stored.size) == MAX_SIDE
    with Image.open(io.BytesIO(to_avatar(image((30, 20))))) as stored:
        assert stored.size == (30, 20)  # small images stay as they are


def test_a_16_bit_grey_picture_keeps_its_shades() -> None:
    """Its shades (0 to 65,535) were read as 8-bit ones: all but the darkest came out white."""
    out = io.BytesIO()
    Image.new("I;16", (40, 40), 30_000).save(out, format="PNG")
    with Image.open(io.BytesIO(to_avatar(out.getvalue()))) as stored:
        assert stored.getpixel((20, 20)) == (116, 116, 116)  # 30,000 / 65,535 of white


def test_a_photo_turned_by_its_exif_is_stored_upright() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: shown turned 90° clockwise, as phones save portraits
    out = io.BytesIO()
    Image.new("RGB", (400, 200)).save(out, format="JPEG", exif=exif.tobytes())
    with Image.open(io.BytesIO(to_avatar(out.getvalue()))) as stored:
        assert stored.size == (128, 256)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"plain text", "not an image I can use"),
        (image(kind="BMP", mode="RGB"), "not an image I can use"),
        (image()[:200], "damaged"),
        (image((6000, 5000), mode="1"), "too large"),
    ],
)
def test_bad_images_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(RoleplayError, match=message):
        to_avatar(data)
