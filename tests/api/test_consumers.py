"""The live feeds: who may connect, close codes, replay on reconnect, delivery.

Fine-grained cases drive the ASGI app through Channels' WebsocketCommunicator; the delivery
and replay cases run on both channel layers (in-memory, and Redis as `make test` starts it);
the end-to-end cases speak to the real app served by uvicorn (`live_app`) with the
`websockets` client. Two uvicorn workers behind one Redis: test_consumers_redis.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from datetime import timedelta
from urllib.request import Request, urlopen

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.contrib.sessions.models import Session
from django.db import transaction
from django.test import Client
from django.utils import timezone
from rest_framework.authtoken.models import Token

from api import consumers
from maraudes import realtime
from maraudes.asgi import application
from maraudes.models import Event, Role
from maraudes.services import shift_end, shift_start
from tests.factories import MembershipFactory, TeamFactory, UserFactory, user_with_role
from tests.support.redis import redis_required, redis_url

pytestmark = pytest.mark.django_db(transaction=True)

REDIS_URL = redis_url(1)
ORIGIN = (b"origin", b"http://testserver")
TIMEOUT = 5


@pytest.fixture(params=["memory", "redis"])
def layer(request, settings):
    """Each delivery test runs on both channel layers; a Redis run has a prefix of its own."""
    if request.param == "redis":
        redis_required()
        settings.CHANNEL_LAYERS = {
            "default": {
                "BACKEND": "channels_redis.core.RedisChannelLayer",
                "CONFIG": {"hosts": [REDIS_URL], "prefix": f"test-{uuid.uuid4().hex[:12]}"},
            }
        }
    else:
        settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    return request.param


# --- Helpers --------------------------------------------------------------------------------


def token_header(user) -> tuple[bytes, bytes]:
    token, _ = Token.objects.get_or_create(user=user)
    return (b"authorization", f"Token {token.key}".encode())


def session_header(user) -> tuple[bytes, bytes]:
    client = Client()
    client.force_login(user)
    name = django_settings.SESSION_COOKIE_NAME
    return (b"cookie", f"{name}={client.cookies[name].value}".encode())


async def connect(path: str, *headers: tuple[bytes, bytes], origin=ORIGIN):
    communicator = WebsocketCommunicator(
        application, path, headers=[origin, *headers] if origin else list(headers)
    )
    connected, _ = await communicator.connect(timeout=TIMEOUT)
    assert connected, f"{path} was not accepted"
    return communicator


async def hello(communicator) -> int:
    message = await communicator.receive_json_from(timeout=TIMEOUT)
    assert message["type"] == "hello", message
    return message["seq"]


async def refusal(communicator) -> tuple[str, int]:
    """(message, close code) of a refused connection."""
    message = await communicator.receive_json_from(timeout=TIMEOUT)
    assert message["type"] == "error", message
    closing = await communicator.receive_output(timeout=TIMEOUT)
    assert closing["type"] == "websocket.close"
    return message["message"], closing["code"]


async def received(communicator, count: int) -> list[dict]:
    return [await communicator.receive_json_from(timeout=TIMEOUT) for _ in range(count)]


def _publish(event_type: str, data: dict, **options) -> int:
    with transaction.atomic():
        return realtime.publish(event_type, data, **options).seq


publish = sync_to_async(_publish)


@pytest.fixture
def coordinator():
    return user_with_role(Role.COORDINATOR)


# --- Who may connect ------------------------------------------------------------------------


async def test_a_coordinator_with_a_session_is_greeted_with_the_last_seq(coordinator):
    cookie = await sync_to_async(session_header)(coordinator)
    seq = await publish("test", {"n": 1})

    ws = await connect("/ws/live/", cookie)

    assert await ws.receive_json_from(timeout=TIMEOUT) == {"type": "hello", "seq": seq}
    assert await ws.receive_nothing(timeout=0.2)
    await ws.disconnect()


async def test_a_phone_connects_with_its_token_in_the_header_or_the_query(coordinator):
    header = await sync_to_async(token_header)(coordinator)
    key = header[1].decode().split()[1]

    by_header = await connect("/ws/live/", header)
    by_query = await connect(f"/ws/live/?token={key}")

    assert (await by_header.receive_json_from())["type"] == "hello"
    assert (await by_query.receive_json_from())["type"] == "hello"
    await by_header.disconnect()
    await by_query.disconnect()


async def test_it_closes_a_connection_without_credentials_with_4401():
    ws = await connect("/ws/live/")

    message, code = await refusal(ws)

    assert code == 4401
    assert "Authentification requise" in message


async def test_it_closes_an_expired_session_with_4401(coordinator):
    cookie = await sync_to_async(session_header)(coordinator)
    await sync_to_async(Session.objects.update)(expire_date=timezone.now() - timedelta(minutes=1))

    ws = await connect("/ws/live/", cookie)

    assert (await refusal(ws))[1] == 4401


async def test_a_wrong_token_is_not_saved_by_a_session(coordinator):
    cookie = await sync_to_async(session_header)(coordinator)

    ws = await connect("/ws/live/?token=not-a-token", cookie)

    assert (await refusal(ws))[1] == 4401


async def test_a_token_of_an_inactive_user_is_refused(coordinator):
    header = await sync_to_async(token_header)(coordinator)
    await sync_to_async(type(coordinator).objects.update)(is_active=False)

    ws = await connect("/ws/live/", header)

    assert (await refusal(ws))[1] == 4401


@pytest.mark.parametrize("role", [Role.FIELD, Role.PLANNER])
async def test_field_members_and_planners_cannot_join_the_live_feed(role):
    team = await sync_to_async(TeamFactory)() if role == Role.FIELD else None
    user = await sync_to_async(user_with_role)(role, team=team)

    ws = await connect("/ws/live/", await sync_to_async(token_header)(user))

    message, code = await refusal(ws)
    assert code == 4403
    assert "réservé aux coordinateurs" in message


async def test_a_superuser_and_an_admin_join_the_live_feed():
    superuser = await sync_to_async(UserFactory)(username="root", is_superuser=True)
    admin = await sync_to_async(user_with_role)(Role.ADMIN)

    for user in (superuser, admin):
        ws = await connect("/ws/live/", await sync_to_async(token_header)(user))
        assert (await ws.receive_json_from(timeout=TIMEOUT))["type"] == "hello"
        await ws.disconnect()


@pytest.mark.parametrize("origin", [b"http://evil.example", b"null"])
async def test_it_refuses_a_handshake_from_another_origin(coordinator, origin):
    cookie = await sync_to_async(session_header)(coordinator)
    communicator = WebsocketCommunicator(
        application, "/ws/live/", headers=[(b"origin", origin), cookie]
    )

    connected, _ = await communicator.connect(timeout=TIMEOUT)

    assert not connected


async def test_it_refuses_a_handshake_without_origin(coordinator):
    communicator = WebsocketCommunicator(
        application, "/ws/live/", headers=[await sync_to_async(session_header)(coordinator)]
    )

    connected, _ = await communicator.connect(timeout=TIMEOUT)

    assert not connected


@pytest.mark.parametrize(
    ("since", "expected"),
    [
        ("abc", "pas « abc »"),
        ("-1", "pas « -1 »"),
        ("1.5", "pas « 1.5 »"),
        ("9" * 40, "entier ≥ 0"),
    ],
)
async def test_a_since_that_is_not_a_number_gets_an_error_then_4400(coordinator, since, expected):
    ws = await connect(f"/ws/live/?since={since}", await sync_to_async(token_header)(coordinator))

    message, code = await refusal(ws)

    assert code == 4400
    assert expected in message


async def test_a_since_in_the_future_gets_an_error_then_4400(coordinator):
    seq = await publish("test", {})
    header = await sync_to_async(token_header)(coordinator)

    ws = await connect(f"/ws/live/?since={seq + 10}", header)

    message, code = await refusal(ws)
    assert code == 4400
    assert f"since={seq + 10} est dans le futur" in message
    assert f"n° {seq}" in message


async def test_an_unknown_feed_is_closed_with_4404(coordinator):
    ws = await connect("/ws/nothing/", await sync_to_async(token_header)(coordinator))

    assert (await refusal(ws))[1] == 4404


async def test_the_feeds_ignore_what_clients_send(coordinator):
    ws = await connect("/ws/live/", await sync_to_async(token_header)(coordinator))
    await hello(ws)

    await ws.send_to(text_data="not json")
    await ws.send_to(bytes_data=b"\x00\x01")
    seq = await publish("test", {"n": 1})

    assert await ws.receive_json_from(timeout=TIMEOUT) == {"seq": seq, "type": "test", "n": 1}
    await ws.disconnect()


async def test_each_process_joins_a_group_once_and_renews_it(coordinator, monkeypatch, settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    monkeypatch.setattr(consumers, "GROUP_RENEW_S", 0.05)
    header = await sync_to_async(token_header)(coordinator)
    layer = get_channel_layer()
    group = realtime.group_coordination()
    clients = [await connect("/ws/live/", header) for _ in range(3)]
    for ws in clients:
        await hello(ws)
    relay = consumers.Relay.of(layer, group)
    (joined_at,) = layer.groups[group].values()  # one member for the three clients

    await asyncio.sleep(0.3)
    seq = await publish("test", {})

    assert (
        layer.groups[group][relay.channel] > joined_at
    )  # renewed: a day-old map still gets events
    for ws in clients:
        assert (await ws.receive_json_from(timeout=TIMEOUT))["seq"] == seq
        await ws.disconnect()
    assert relay.members == set()


# --- Delivery and replay, on both channel layers --------------------------------------------


async def test_a_coordinator_receives_a_shift_started_after_commit(layer, coordinator):
    team = await sync_to_async(TeamFactory)()
    ws = await connect("/ws/live/", await sync_to_async(token_header)(coordinator))
    await hello(ws)

    started = await sync_to_async(shift_start)(team=team, by=None)

    message = await ws.receive_json_from(timeout=TIMEOUT)
    assert message["type"] == "shift_started"
    assert message["shift"] == started.shift.pk and message["team_name"] == team.name
    assert message["seq"] == await sync_to_async(realtime.last_seq)()
    await ws.disconnect()


async def test_a_reconnecting_client_gets_exactly_what_it_missed_in_order_once(layer, coordinator):
    header = await sync_to_async(token_header)(coordinator)
    team = await sync_to_async(TeamFactory)()
    first = await connect("/ws/live/", header)
    await hello(first)
    shift = (await sync_to_async(shift_start)(team=team, by=None)).shift
    last_seen = (await first.receive_json_from(timeout=TIMEOUT))["seq"]
    await first.disconnect()

    # Three writes while the laptop lid is closed.
    await sync_to_async(shift_end)(shift=shift)
    missed = [await publish("test", {"n": n}) for n in (1, 2)]

    again = await connect(f"/ws/live/?since={last_seen}", header)
    assert await hello(again) == missed[-1]
    replay = await received(again, 3)
    assert [m["type"] for m in replay] == ["shift_ended", "test", "test"]
    assert [m["seq"] for m in replay] == sorted(m["seq"] for m in replay)
    assert [m["seq"] for m in replay[1:]] == missed
    assert await again.receive_nothing(timeout=0.3)

    # Then live events follow, once.
    live = await publish("test", {"n": 3})
    assert (await again.receive_json_from(timeout=TIMEOUT))["seq"] == live
    assert await again.receive_nothing(timeout=0.3)
    await again.disconnect()


async def test_events_written_during_the_replay_are_neither_lost_nor_doubled(
    layer, coordinator, monkeypatch
):
    header = await sync_to_async(token_header)(coordinator)
    since = await publish("test", {"n": 0})
    missed = await publish("test", {"n": 1})
    during: list[int] = []
    real_plan = consumers.replay_plan

    def plan_with_writes_around_the_read(**kwargs):
        # Committed (and sent live) after the consumer joined its group, before the read:
        # it is in the replay *and* arrives live.
        during.append(_publish("test", {"n": 2}))
        plan = real_plan(**kwargs)
        # Committed after the read: only live can bring it.
        during.append(_publish("test", {"n": 3}))
        return plan

    monkeypatch.setattr(consumers, "replay_plan", plan_with_writes_around_the_read)

    ws = await connect(f"/ws/live/?since={since}", header)

    await hello(ws)
    messages = await received(ws, 3)
    assert [m["seq"] for m in messages] == [missed, *during]
    assert [m["n"] for m in messages] == [1, 2, 3]
    assert await ws.receive_nothing(timeout=0.3)
    await ws.disconnect()


async def test_a_live_event_numbered_before_the_replay_end_is_still_delivered(
    layer, coordinator, monkeypatch
):
    """Transactions may commit in another order than their numbers: an event that was not in
    the replay arrives live and is forwarded, even with a seq below the last replayed one."""
    header = await sync_to_async(token_header)(coordinator)
    since = await publish("test", {"n": 0})
    late = await sync_to_async(Event.objects.create)(type="test", data={"n": "late"})
    replayed = await publish("test", {"n": 1})
    real_plan = consumers.replay_plan

    def plan_read_before_the_late_commit(**kwargs):
        plan = real_plan(**kwargs)
        # As if the transaction holding `late` had not committed when the replay was read;
        # then it commits and its on_commit sends it.
        plan = dataclasses.replace(plan, events=[e for e in plan.events if e["seq"] != late.seq])
        realtime.send(late)
        return plan

    monkeypatch.setattr(consumers, "replay_plan", plan_read_before_the_late_commit)
    ws = await connect(f"/ws/live/?since={since}", header)
    await hello(ws)

    messages = await received(ws, 2)

    assert [m["seq"] for m in messages] == [replayed, late.seq]
    assert late.seq < replayed
    assert await ws.receive_nothing(timeout=0.3)
    await ws.disconnect()


async def test_a_client_too_far_behind_is_told_to_reload(coordinator):
    header = await sync_to_async(token_header)(coordinator)
    since = await publish("test", {})
    await sync_to_async(Event.objects.bulk_create)(
        [Event(type="test", data={"n": n}) for n in range(consumers.REPLAY_MAX + 1)]
    )

    ws = await connect(f"/ws/live/?since={since}", header)

    await hello(ws)
    assert await ws.receive_json_from(timeout=TIMEOUT) == {"type": "reload"}
    assert await ws.receive_nothing(timeout=0.3)
    # Still subscribed: the reloaded page may keep this socket.
    seq = await publish("test", {"n": "live"})
    assert (await ws.receive_json_from(timeout=TIMEOUT))["seq"] == seq
    await ws.disconnect()


async def test_a_client_behind_the_oldest_stored_event_is_told_to_reload(coordinator):
    header = await sync_to_async(token_header)(coordinator)
    seqs = [await publish("test", {"n": n}) for n in range(4)]
    await sync_to_async(Event.objects.filter(seq__lte=seqs[1]).delete)()  # purged

    ws = await connect(f"/ws/live/?since={seqs[0]}", header)

    await hello(ws)
    assert await ws.receive_json_from(timeout=TIMEOUT) == {"type": "reload"}
    await ws.disconnect()


async def test_since_zero_replays_everything_stored(coordinator):
    header = await sync_to_async(token_header)(coordinator)
    seqs = [await publish("test", {"n": n}) for n in range(2)]

    ws = await connect("/ws/live/?since=0", header)

    await hello(ws)
    assert [m["seq"] for m in await received(ws, 2)] == seqs
    await ws.disconnect()


# --- The team feed --------------------------------------------------------------------------


def _assignment(team_id: int, zone: str) -> int:
    with transaction.atomic():
        event = realtime.assignment_changed(
            action="created", assignment_data={"zone_code": zone, "team": team_id}, team_id=team_id
        )
    return event.seq


assignment = sync_to_async(_assignment)


async def test_a_member_receives_only_their_team_assignments(layer):
    team, other = await sync_to_async(TeamFactory.create_batch)(2)
    member = await sync_to_async(user_with_role)(Role.FIELD, team=team)
    ws = await connect("/ws/team/", await sync_to_async(token_header)(member))
    assert await ws.receive_json_from(timeout=TIMEOUT) == {
        "type": "hello",
        "seq": await sync_to_async(realtime.last_seq)(),
        "team": team.pk,
    }

    await sync_to_async(shift_start)(team=team, by=None)  # coordination only
    await assignment(other.pk, "S02")
    mine = await assignment(team.pk, "S01")

    message = await ws.receive_json_from(timeout=TIMEOUT)
    assert message["seq"] == mine
    assert message["type"] == "assignment_changed" and message["zone_code"] == "S01"
    assert await ws.receive_nothing(timeout=0.3)
    await ws.disconnect()


async def test_a_member_replays_only_their_team_events(layer):
    team, other = await sync_to_async(TeamFactory.create_batch)(2)
    member = await sync_to_async(user_with_role)(Role.FIELD, team=team)
    since = await publish("test", {})
    await assignment(other.pk, "S02")
    mine = await assignment(team.pk, "S01")
    await sync_to_async(shift_start)(team=team, by=None)

    ws = await connect(f"/ws/team/?since={since}", await sync_to_async(token_header)(member))

    await hello(ws)
    assert [m["seq"] for m in await received(ws, 1)] == [mine]
    assert await ws.receive_nothing(timeout=0.3)
    await ws.disconnect()


async def test_a_member_of_several_teams_picks_one_else_gets_the_first():
    first, second = await sync_to_async(TeamFactory.create_batch)(2)
    member = await sync_to_async(user_with_role)(Role.FIELD, team=first)
    await sync_to_async(MembershipFactory)(
        user=member, organization=second.organization, role=Role.FIELD, team=second
    )
    header = await sync_to_async(token_header)(member)

    default = await connect("/ws/team/", header)
    chosen = await connect(f"/ws/team/?team={second.pk}", header)

    assert (await default.receive_json_from(timeout=TIMEOUT))["team"] == first.pk
    assert (await chosen.receive_json_from(timeout=TIMEOUT))["team"] == second.pk
    await default.disconnect()
    await chosen.disconnect()


async def test_a_member_cannot_follow_another_team():
    team, other = await sync_to_async(TeamFactory.create_batch)(2)
    member = await sync_to_async(user_with_role)(Role.FIELD, team=team)

    ws = await connect(f"/ws/team/?team={other.pk}", await sync_to_async(token_header)(member))

    assert (await refusal(ws))[1] == 4403


async def test_a_planner_has_no_team_feed():
    planner = await sync_to_async(user_with_role)(Role.PLANNER)

    ws = await connect("/ws/team/", await sync_to_async(token_header)(planner))

    message, code = await refusal(ws)
    assert code == 4403 and "aucune équipe" in message


async def test_the_coordination_may_follow_any_team_but_not_one_that_does_not_exist(
    coordinator,
):
    team = await sync_to_async(TeamFactory)()
    header = await sync_to_async(token_header)(coordinator)

    ws = await connect(f"/ws/team/?team={team.pk}", header)
    missing = await connect(f"/ws/team/?team={team.pk + 1000}", header)
    garbage = await connect("/ws/team/?team=nord", header)

    assert (await ws.receive_json_from(timeout=TIMEOUT))["team"] == team.pk
    assert await refusal(missing) == (f"Aucune équipe n° {team.pk + 1000}.", 4400)
    assert (await refusal(garbage))[1] == 4400
    await ws.disconnect()


# --- End to end: the real app under uvicorn, a real websocket client ------------------------


def _post(base: str, path: str, body: dict, token: str) -> dict:
    request = Request(  # noqa: S310 - our own http://127.0.0.1 test server
        f"{base}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Token {token}"},
    )
    with urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310
        return json.load(response)


def test_positions_posted_over_http_reach_a_coordinator_websocket(live_app):
    from websockets.sync.client import connect as ws_connect

    team = TeamFactory()
    member = user_with_role(Role.FIELD, team=team)
    coordinator = user_with_role(Role.COORDINATOR)
    phone = Token.objects.create(user=member).key
    desk = Token.objects.create(user=coordinator).key
    url = live_app.replace("http://", "ws://") + "/ws/live/"

    with ws_connect(
        url, origin=live_app, additional_headers={"Authorization": f"Token {desk}"}
    ) as ws:
        assert json.loads(ws.recv(timeout=TIMEOUT))["type"] == "hello"
        shift = _post(live_app, "/api/v1/shifts/", {"team": team.pk}, phone)
        started = json.loads(ws.recv(timeout=TIMEOUT))
        assert started["type"] == "shift_started" and started["shift"] == shift["id"]

        fix = {"t": timezone.now().isoformat(), "lon": 2.3499, "lat": 48.8530, "accuracy": 8}
        result = _post(
            live_app, f"/api/v1/shifts/{shift['id']}/positions/", {"fixes": [fix]}, phone
        )
        assert result["accepted"] == 1
        position = json.loads(ws.recv(timeout=TIMEOUT))
        assert position["type"] == "position" and position["shift"] == shift["id"]
        assert position["lon"] == pytest.approx(2.3499) and position["seq"] > started["seq"]


def test_a_real_browser_handshake_from_another_origin_is_refused(live_app):
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect as ws_connect

    coordinator = user_with_role(Role.COORDINATOR)
    key = Token.objects.create(user=coordinator).key
    url = live_app.replace("http://", "ws://") + f"/ws/live/?token={key}"

    with pytest.raises(InvalidStatus) as refused:
        ws_connect(url, origin="https://evil.example", open_timeout=TIMEOUT)

    assert refused.value.response.status_code == 403
    # The same token from the app's own origin is welcome.
    with ws_connect(url, origin=live_app, open_timeout=TIMEOUT) as ws:
        assert json.loads(ws.recv(timeout=TIMEOUT))["type"] == "hello"
