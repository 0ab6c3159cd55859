"""Push channels against real servers: email through aiosmtpd, webhooks to a local HTTP receiver.

Signed bodies a receiver can verify, retries with backoff then a recorded failure and
`notification.failed.v1`, an administrator's retry, and a receiver that hangs without delaying the
inbox or anyone else's delivery.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import random
import ssl
import uuid
from decimal import Decimal
from typing import Any

import pytest
from kkmp_shared import clock
from kkmp_shared.events.contracts import PotentialMapped, StockStalled
from kkmp_testkit.wait import eventually
from notifications_testkit import Env

pytestmark = pytest.mark.integration


def kecamatan() -> str:
    return f"36.{random.randint(10, 99)}.{random.randint(10, 99)}"


def stalled(cooperative_id: str, kecamatan_code: str, commodity: str = "beras_medium") -> StockStalled:
    return StockStalled(
        cooperative_id=cooperative_id,
        kelurahan_code=f"{kecamatan_code}.1004",
        kecamatan_code=kecamatan_code,
        commodity=commodity,
        on_hand=Decimal("120"),
        unit="kg",
        days_since_sale=21,
        value=8_100_000,
        detected_at=clock.now(),
    )


async def subscribe(env: Env, channel: str, target: str, kecamatan_code: str, **extra: Any) -> dict[str, Any]:
    response = await env.client.post(
        "/subscriptions",
        headers=env.tokens.headers("admin"),
        json={
            "channel": channel,
            "target": target,
            "event_types": ["stock.stalled.v1"],
            "kecamatan_codes": [kecamatan_code],
            **extra,
        },
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def deliveries(env: Env, **params: Any) -> list[dict[str, Any]]:
    response = await env.client.get("/deliveries", headers=env.tokens.headers("admin"), params=params)
    assert response.status_code == 200, response.text
    return response.json()["items"]  # type: ignore[no-any-return]


async def test_webhook_body_is_the_cloudevent_and_its_signature_verifies(env: Env) -> None:
    here = kecamatan()
    coop = await env.add_cooperative("KKMP Webhook", here)
    path = f"/hook/{uuid.uuid4().hex}"
    subscription = await subscribe(
        env, "webhook", env.receiver.url(path), here, description="Gerbang WhatsApp"
    )
    secret = subscription["secret"]
    assert secret and len(secret) >= 32
    # The secret is shown once: reading the subscription does not reveal it.
    read = await env.client.get(f"/subscriptions/{subscription['id']}", headers=env.tokens.headers("admin"))
    assert read.status_code == 200 and "secret" not in read.json()

    event = await env.publish(stalled(coop, here))
    elsewhere = await env.publish(stalled(await env.add_cooperative("KKMP Luar", kecamatan()), "99.99.99"))
    [request] = await eventually(lambda: env.receiver.at(path), timeout=15)
    # What the receiver does: HMAC-SHA256 of the raw body with the shared secret.
    expected = "sha256=" + hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.headers["x-kkmp-signature"], expected)
    assert request.headers["content-type"] == "application/cloudevents+json"
    body = json.loads(request.body)
    assert body["id"] == event.id and body["type"] == "stock.stalled.v1" and body["specversion"] == "1.0"
    assert body["data"]["cooperative_id"] == coop and body["subject"] == coop
    # The rendered text rides along as extension attributes, for WhatsApp/SMS gateways.
    assert body["kkmpmessage"] == (
        "Stok beras medium di KKMP Webhook tidak terjual selama 21 hari (120 kg, ± Rp8,1 juta)."
    )
    assert body["kkmptitle"] == "Stok macet: Beras medium"
    assert body["kkmplink"] == f"http://127.0.0.1:8000/koperasi/{coop}"

    [delivery] = await eventually(
        lambda: _with_status(env, subscription["id"], "delivered"),
        timeout=10,
    )
    assert delivery["attempts"] == 1 and delivery["event_id"] == event.id
    assert [a["status_code"] for a in delivery["attempt_log"]] == [200]
    [announced] = await env.probe.wait_for(
        "notification.delivered.v1", lambda e: e.data["delivery_id"] == delivery["id"]
    )
    assert announced.data["channel"] == "webhook" and announced.data["source_event_id"] == event.id
    # The subscription is limited to its kecamatan.
    await eventually(lambda: env.processed(elsewhere.id), timeout=10)
    assert len(env.receiver.at(path)) == 1


async def _subscription_deliveries(env: Env, subscription_id: str) -> list[dict[str, Any]]:
    return await deliveries(env, subscription_id=subscription_id)


async def _with_status(env: Env, subscription_id: str, status: str) -> list[dict[str, Any]]:
    return [d for d in await _subscription_deliveries(env, subscription_id) if d["status"] == status]


async def _attempts_of(env: Env, subscription_id: str) -> list[dict[str, Any]]:
    return [a for d in await _subscription_deliveries(env, subscription_id) for a in d["attempt_log"]]


async def test_failing_webhook_is_retried_with_backoff_then_failed_then_retried_by_admin(env: Env) -> None:
    here = kecamatan()
    coop = await env.add_cooperative("KKMP Gagal", here)
    path = f"/hook/{uuid.uuid4().hex}"
    env.receiver.modes[path] = 503
    subscription = await subscribe(env, "webhook", env.receiver.url(path), here)
    event = await env.publish(stalled(coop, here))

    [failed] = await eventually(
        lambda: _with_status(env, subscription["id"], "failed"),
        timeout=20,
    )
    assert failed["attempts"] == 3 == len(failed["attempt_log"])  # DELIVERY_MAX_ATTEMPTS in the tests
    assert [a["status_code"] for a in failed["attempt_log"]] == [503, 503, 503]
    assert failed["last_error"].startswith("HTTP 503")
    arrivals = [r.at for r in env.receiver.at(path)]
    assert len(arrivals) == 3
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    # Backoff base 0.3 s with jitter: the first wait is 0.15-0.3 s, the second 0.3-0.6 s.
    assert gaps[0] >= 0.14 and gaps[1] >= 0.29, gaps
    [gave_up] = await env.probe.wait_for(
        "notification.failed.v1", lambda e: e.data["delivery_id"] == failed["id"]
    )
    assert gave_up.data["attempts"] == 3 and gave_up.data["source_event_id"] == event.id
    assert (
        await env.client.get("/deliveries", headers=env.tokens.headers("admin"), params={"status": "failed"})
    ).json()["total"] >= 1

    # An officer may not retry; the admin may, and the receiver is back.
    officer = env.tokens.headers("officer")
    assert (await env.client.post(f"/deliveries/{failed['id']}/retry", headers=officer)).status_code == 403
    env.receiver.modes[path] = 200
    retried = await env.client.post(f"/deliveries/{failed['id']}/retry", headers=env.tokens.headers("admin"))
    assert retried.status_code == 202, retried.text
    delivered = await eventually(
        lambda: _with_status(env, subscription["id"], "delivered"),
        timeout=10,
    )
    assert delivered[0]["attempts"] == 4 and len(delivered[0]["attempt_log"]) == 4
    again = await env.client.post(f"/deliveries/{failed['id']}/retry", headers=env.tokens.headers("admin"))
    assert again.status_code == 409 and again.json()["error"]["code"] == "illegal_state"


async def test_a_hanging_receiver_delays_neither_the_inbox_nor_other_receivers(env: Env) -> None:
    here = kecamatan()
    coop = await env.add_cooperative("KKMP Lambat", here)
    address = f"pengurus-{uuid.uuid4().hex[:6]}@kkmp.id"
    manager = await env.add_user("coop_manager", cooperative_id=coop, email=address)
    hang, ok = f"/hook/{uuid.uuid4().hex}", f"/hook/{uuid.uuid4().hex}"
    env.receiver.modes[hang] = "hang"
    hanging = await subscribe(env, "webhook", env.receiver.url(hang), here)
    await subscribe(env, "webhook", env.receiver.url(ok), here)

    commodities = ["beras_premium", "gula", "telur", "garam"]
    events = [await env.publish(stalled(coop, here, c)) for c in commodities]
    # Every event reaches the working receiver, the manager's inbox and mailbox, while the hanging
    # receiver holds its attempts open for WEBHOOK_TIMEOUT_S (3 s) each.
    await eventually(lambda: len(env.receiver.at(ok)) == len(events), timeout=10)
    inbox = await env.inbox(manager)
    assert {n["body"].split(" di ")[0] for n in inbox} == {
        "Stok beras premium",
        "Stok gula pasir",
        "Stok telur ayam ras",
        "Stok garam konsumsi",
    }
    await eventually(lambda: len(env.smtp.mailbox.to(address)) == len(events), timeout=10)
    first_hang = min(r.at for r in env.receiver.at(hang))
    # Nobody waited for the hanging receiver: everything reached the working one before its
    # first attempt could even time out.
    assert max(r.at for r in env.receiver.at(ok)) < first_hang + 3.0
    stuck = await _subscription_deliveries(env, hanging["id"])
    assert len(stuck) == len(events)
    # At most DELIVERY_PER_TARGET (2) attempts are ever in flight to the hanging target.
    await eventually(lambda: len(env.receiver.at(hang)) >= 3, timeout=15)
    assert env.receiver.open_peak[hang] == 2
    # Its attempts end in a recorded timeout and are retried.
    timed_out = await eventually(
        lambda: _attempts_of(env, hanging["id"]),
        timeout=10,
    )
    assert timed_out[0]["outcome"] == "timeout"
    # Switch it off: what is waiting is given up, nothing more is sent.
    assert (
        await env.client.delete(f"/subscriptions/{hanging['id']}", headers=env.tokens.headers("admin"))
    ).status_code == 204


async def test_email_to_users_and_to_email_subscriptions(env: Env) -> None:
    here = kecamatan()
    coop = await env.add_cooperative("KKMP Surel", here)
    address = f"pengurus-{uuid.uuid4().hex[:6]}@kkmp.id"
    manager = await env.add_user("coop_manager", cooperative_id=coop, email=address)
    ops = f"ops-{uuid.uuid4().hex[:6]}@dinkop.surabaya.go.id"
    await subscribe(env, "email", ops, here)
    event = await env.publish(stalled(coop, here))
    [mail] = await eventually(lambda: env.smtp.mailbox.to(address), timeout=15)
    assert str(mail["Subject"]) == "[KKMP] Stok macet: Beras medium"
    text = mail.get_content()
    assert "Stok beras medium di KKMP Surel tidak terjual selama 21 hari (120 kg, ± Rp8,1 juta)." in text
    assert f"http://127.0.0.1:8000/koperasi/{coop}" in text
    await eventually(lambda: env.smtp.mailbox.to(ops), timeout=15)
    every = await eventually(lambda: _all_delivered(env, event.id, 2), timeout=10)
    assert {d["target"] for d in every} == {address, ops}
    # The same event again: no second email. With email switched off: none.
    await env.probe.publish_raw(
        json.dumps(event.model_dump(mode="json", exclude_none=True)).encode(), event.type
    )
    off = await env.client.put(
        "/me/preferences", headers=env.headers_for(manager, "coop_manager"), json={"email": False}
    )
    assert off.status_code == 200 and off.json()["email"] is False
    later = await env.publish(stalled(coop, here, "lpg_3kg"))
    await eventually(lambda: env.processed(later.id), timeout=10)
    await eventually(lambda: len(env.smtp.mailbox.to(ops)) == 2, timeout=10)
    assert len(env.smtp.mailbox.to(address)) == 1
    assert len(await env.inbox(manager)) == 2


async def _all_delivered(env: Env, event_id: str, count: int) -> list[dict[str, Any]]:
    rows = [
        d for d in await deliveries(env, event_id=event_id, channel="email") if d["status"] == "delivered"
    ]
    return rows if len(rows) >= count else []


async def test_webhook_targets_are_validated(env: Env) -> None:
    admin = env.tokens.headers("admin")

    async def post(target: str) -> Any:
        return await env.client.post(
            "/subscriptions",
            headers=admin,
            json={
                "channel": "webhook",
                "target": target,
                "event_types": ["potential.mapped.v1"],
                "kecamatan_codes": ["35.78.99"],
            },
        )

    settings = env.app.state.settings
    settings.allow_internal_webhooks = False
    try:
        for target in (
            env.receiver.url("/x"),
            "http://localhost:9000/x",
            "http://10.0.0.8/x",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]:8080/",
        ):
            response = await post(target)
            assert response.status_code == 422, (target, response.text)
            assert response.json()["error"]["code"] == "invalid_target"
        for target in ("ftp://example.com/x", "javascript:alert(1)", "https://user:pw@example.com/"):
            response = await post(target)
            assert response.status_code == 422, target
        accepted = await post("https://93.184.216.34/kkmp")
        assert accepted.status_code == 201, accepted.text
    finally:
        settings.allow_internal_webhooks = True
    assert (
        await env.client.delete(f"/subscriptions/{accepted.json()['id']}", headers=admin)
    ).status_code == 204
    bad_email = await env.client.post(
        "/subscriptions",
        headers=admin,
        json={"channel": "email", "target": "bukan email", "event_types": ["stock.stalled.v1"]},
    )
    assert bad_email.status_code == 422
    # A potential in that kecamatan now reaches nobody: the subscription is off.
    event = await env.publish(
        PotentialMapped(
            potential_id=str(uuid.uuid4()),
            kelurahan_code="35.78.99.1001",
            kecamatan_code="35.78.99",
            sector="perikanan",
            description="Tambak bandeng",
            priority=1,
        )
    )
    await eventually(lambda: env.processed(event.id), timeout=10)
    assert await deliveries(env, event_id=event.id) == []


def _sender_resolving(
    env: Env,
    monkeypatch: pytest.MonkeyPatch,
    answers: list[list[str]],
    asked: list[str],
    ssl_context: ssl.SSLContext | None = None,
) -> Any:
    """A webhook sender that checks its targets (internal ones refused) through a scripted resolver:
    each resolution is recorded in `asked` and answers the next of `answers`, then an internal address;
    the loopback receiver passes the check as if it were public."""
    from notifications.adapters import channels
    from notifications.domain import delivery as rules

    async def scripted(host: str, port: int) -> list[str]:
        asked.append(host)
        return answers.pop(0) if answers else ["10.0.0.8"]

    monkeypatch.setattr(channels, "resolve_host", scripted)
    monkeypatch.setattr(
        channels,
        "check_addresses",
        lambda target, addresses: rules.check_addresses(
            target, ["93.184.216.34" if a == "127.0.0.1" else a for a in addresses]
        ),
    )
    settings = env.app.state.settings.model_copy(update={"allow_internal_webhooks": False})
    return channels.WebhookSender(settings, ssl_context=ssl_context)


async def test_a_webhook_is_sent_to_the_address_that_was_checked(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: a name that resolves to a public address for the check and to an internal one
    a moment later must not reach the internal one. The sender connects to the checked address and
    never resolves the name again; the receiver still sees its own name in Host.

    The resolver is scripted (first answer "public", later answers internal) and the check accepts
    the loopback receiver as if it were public; the name itself (`.invalid`) resolves nowhere, so a
    second resolution by the HTTP client could not have reached the receiver at all."""
    asked: list[str] = []
    sender = _sender_resolving(env, monkeypatch, [["127.0.0.1"]], asked)
    name = f"hooks-{uuid.uuid4().hex[:8]}.invalid"
    path = f"/pinned-{uuid.uuid4().hex[:8]}?x=1"

    async def send(delivery_id: str) -> Any:
        return await sender.send(
            url=f"http://{name}:{env.receiver.port}{path}",
            body=b"{}",
            secret=None,
            delivery_id=delivery_id,
            event_id="e-1",
            event_type="stock.stalled.v1",
        )

    try:
        result = await send("d-1")
        assert result.ok, result
        [received] = env.receiver.at(path)
        assert received.headers["host"] == f"{name}:{env.receiver.port}"
        assert asked == [name]
        # The next attempt resolves again and is refused: the name now points inside.
        again = await send("d-2")
        assert again.outcome == "refused" and "10.0.0.8" in (again.error or "")
        assert len(env.receiver.at(path)) == 1
    finally:
        await sender.close()


async def test_an_https_webhook_to_the_checked_address_presents_and_verifies_the_receivers_name(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The https side of the rebinding defence: connected to the checked address, the sender still
    sends the receiver's name in SNI and verifies the certificate against that name, not the address.

    A local TLS receiver with a certificate from a throwaway CA (trustme) for one `.invalid` name; the
    resolver is scripted as in the test above. The sender's HTTP client is given that CA as its only
    trust root: what is under test is which name it asks for and checks."""
    import trustme

    name = f"hooks-{uuid.uuid4().hex[:8]}.invalid"
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(name).configure_cert(server_context)
    server_names: list[str | None] = []
    requests: list[bytes] = []

    def on_sni(_sock: Any, server_name: str | None, _context: Any) -> None:
        server_names.append(server_name)

    server_context.sni_callback = on_sni

    async def answer(reader: Any, writer: Any) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lengths = [line for line in head.lower().split(b"\r\n") if line.startswith(b"content-length:")]
        length = int(lengths[0].split(b":", 1)[1]) if lengths else 0
        await reader.readexactly(length)
        requests.append(head)
        writer.write(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=server_context)
    port = server.sockets[0].getsockname()[1]

    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    sender = _sender_resolving(env, monkeypatch, [["127.0.0.1"], ["127.0.0.1"]], [], client_context)

    async def send(url: str) -> Any:
        return await sender.send(
            url=url, body=b"{}", secret=None, delivery_id="d-1", event_id="e-1", event_type="stock.stalled.v1"
        )

    try:
        result = await send(f"https://{name}:{port}/hook")
        assert result.ok, result
        assert server_names == [name]
        [head] = requests
        assert f"host: {name}:{port}".encode() in head.lower()
        # A certificate for another name is refused: it is checked against the name, not the address.
        other = f"other-{uuid.uuid4().hex[:8]}.invalid"
        refused = await send(f"https://{other}:{port}/hook")
        assert (
            not refused.ok and refused.outcome == "error" and "certificate" in (refused.error or "").lower()
        )
        assert server_names == [name, other] and len(requests) == 1
    finally:
        await sender.close()
        server.close()
        await server.wait_closed()
