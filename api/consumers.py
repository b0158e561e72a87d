"""Websocket feeds (STYLE rule 9): authenticate, authorize, join the group, replay what a
reconnecting client missed, forward live events. Nothing is written through a socket.

- `/ws/live/?since=N`: the coordination's feed (coordinators and administrators).
- `/ws/team/?since=N[&team=ID]`: one team's feed (assignments, alerts), for its members; a
  member of several teams picks one with `team`, else gets the first; the coordination may
  watch any team's feed with `team`.

Every message is a JSON object with a `type`; events also carry their `seq`. A connection
first receives `{"type": "hello", "seq": <last event stored>}`, then, when it gave `since`,
the events after `since` in order (or `{"type": "reload"}` when it is too far behind), then
live events. A refused connection receives `{"type": "error", "message": ...}` and is closed
with a code: 4401 no or expired credentials, 4403 a feed the user may not see, 4400 a bad
parameter (`since` not a number or in the future), 4404 no such feed.

Fan-out: each process joins a group once and hands its events to its own clients (Relay),
rather than each client joining with a channel of its own: at 50 coordinators that cut a
worker's CPU per fix from ~40 to ~25 ms (in-memory layer) and from ~49 to ~31 ms (Redis).

Replay without loss or doubles: the consumer joins its group *before* reading the stored
events, and holds the live events that arrive meanwhile until the replay is sent. A held (or
later) live event that the replay already carried is dropped by its `seq`; every other one is
forwarded, even one numbered below the last replayed event: transactions may commit in
another order than their numbers, and such an event was not in the replay.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer, AsyncWebsocketConsumer
from channels.layers import BaseChannelLayer

from maraudes import realtime
from maraudes.models import Team
from maraudes.roles import COORDINATION, AnyUser, user_has_role, user_team_ids

log = logging.getLogger(__name__)

# A client further behind than this reloads the page instead of replaying event by event.
REPLAY_MAX = 1000
# Channel layers forget a group member after a day (group_expiry): a map left open on a
# coordination desk for days joins again well before that.
GROUP_RENEW_S = 6 * 3600

CLOSE_BAD_REQUEST = 4400
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_SERVER_ERROR = 1011

_NUMBER = re.compile(r"[0-9]{1,30}")

# Every client of this process is sent the same text for an event: encoded once, not once per
# client (the hot path is every event × every client). A cache of pure results, keyed by
# seq: two workers cannot disagree on it.
_ENCODED: OrderedDict[int, str] = OrderedDict()
_ENCODED_MAX = 512


def event_text(event: dict) -> str:
    seq = event.get("seq")
    text = _ENCODED.get(seq) if seq is not None else None
    if text is None:
        text = json.dumps(event)
        if seq is not None:
            _ENCODED[seq] = text
            if len(_ENCODED) > _ENCODED_MAX:
                _ENCODED.popitem(last=False)
    return text


class Refused(Exception):
    """A connection that must be closed with `code`, after telling the client why."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Replay:
    head: int  # the last stored event once the consumer had joined its group
    events: list[dict]
    reload: bool


def replay_plan(*, since: int | None, team_id: int | None) -> Replay:
    """What a client that last saw `since` must receive before the live events."""
    head = realtime.last_seq()
    if since is None:
        return Replay(head=head, events=[], reload=False)
    if since > head:
        raise Refused(
            CLOSE_BAD_REQUEST,
            f"since={since} est dans le futur : le dernier événement est le n° {head}.",
        )
    events = realtime.events_since(since, team_id=team_id, limit=REPLAY_MAX + 1)
    # since=0 is a client that never saw an event (the table was empty): it misses nothing
    # that was purged, and sequence gaps from rolled-back writes must not make it reload.
    oldest = realtime.oldest_seq()
    purged = since > 0 and oldest is not None and since + 1 < oldest
    if len(events) > REPLAY_MAX or purged:
        return Replay(head=head, events=[], reload=True)
    return Replay(head=head, events=[e.as_message() for e in events], reload=False)


def since_param(params: dict[str, list[str]]) -> int | None:
    raw = params.get("since", [""])[-1].strip()
    if not raw:
        return None
    if not _NUMBER.fullmatch(raw):
        raise Refused(
            CLOSE_BAD_REQUEST,
            f"since doit être le numéro du dernier événement reçu (entier ≥ 0), "
            f"pas « {raw[:40]} ».",
        )
    return int(raw)


def live_feed_authorize(user: AnyUser) -> None:
    if not user_has_role(user, COORDINATION):
        raise Refused(
            CLOSE_FORBIDDEN,
            "Le fil de la coordination est réservé aux coordinateurs et administrateurs.",
        )


def team_feed_team(user: AnyUser, raw_team: str) -> int:
    """The team whose feed the user asked for (or their first team), if they may see it."""
    own = sorted(user_team_ids(user))
    raw_team = raw_team.strip()
    if not raw_team:
        if not own:
            raise Refused(
                CLOSE_FORBIDDEN,
                "Vous n'êtes membre d'aucune équipe : pas de fil d'équipe à suivre.",
            )
        return own[0]
    if not _NUMBER.fullmatch(raw_team):
        raise Refused(
            CLOSE_BAD_REQUEST,
            f"team doit être l'identifiant d'une équipe, pas « {raw_team[:40]} ».",
        )
    team_id = int(raw_team)
    if team_id in own:
        return team_id
    if not user_has_role(user, COORDINATION):
        raise Refused(CLOSE_FORBIDDEN, "Ce fil est celui d'une équipe dont vous n'êtes pas membre.")
    if not Team.objects.filter(pk=team_id).exists():
        raise Refused(CLOSE_BAD_REQUEST, f"Aucune équipe n° {team_id}.")
    return team_id


class Relay:
    """A group's live events for every consumer of this process, received once.

    Channels would give each consumer a channel of its own in the group: an event for 50
    coordinators is then copied, queued, received and dispatched 50 times in a worker, and
    crosses Redis 50 times. Instead each process joins a group once, with one channel, and
    hands every event to its local consumers. Per process and event loop, built on first use:
    no state that two workers could disagree on (each has its own sockets).
    """

    _relays: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def __init__(self, layer: BaseChannelLayer, group: str) -> None:
        self.layer = layer
        self.group = group
        self.members: set[FeedConsumer] = set()
        self.channel: str | None = None
        self.joined: asyncio.Future | None = None
        self.tasks: list[asyncio.Future] = []  # receive and renew, for as long as the loop runs

    @classmethod
    def of(cls, layer: BaseChannelLayer, group: str) -> Relay:
        relays = cls._relays.setdefault(asyncio.get_running_loop(), {})
        relay = relays.get((id(layer), group))
        if relay is None or relay.layer is not layer:
            relay = relays[(id(layer), group)] = cls(layer, group)
        return relay

    async def add(self, consumer: FeedConsumer) -> None:
        """Returns once events of the group sent from now on reach `consumer`."""
        self.members.add(consumer)
        if self.joined is None:
            self.joined = asyncio.ensure_future(self._join())
        try:
            await asyncio.shield(self.joined)
        except Exception:
            self.members.discard(consumer)
            if self.joined.done():
                self.joined = None  # the next consumer tries again
            raise

    def discard(self, consumer: FeedConsumer) -> None:
        self.members.discard(consumer)

    async def _join(self) -> None:
        self.channel = await self.layer.new_channel()
        await self.layer.group_add(self.group, self.channel)
        self.tasks = [asyncio.ensure_future(self._receive()), asyncio.ensure_future(self._renew())]

    async def _receive(self) -> None:
        while True:
            try:
                message = await self.layer.receive(self.channel)
            except asyncio.CancelledError:
                raise
            except Exception:  # Redis away for a moment: clients catch up on reconnect
                log.exception("websocket: receiving %s failed", self.group)
                await asyncio.sleep(1)
                continue
            if message.get("type") != "event.forward":
                continue
            for consumer in list(self.members):
                try:
                    await consumer.event_forward(message)
                except Exception:  # a socket closing under our feet: never starve the others
                    log.warning("websocket: dropped a client of %s", self.group, exc_info=True)
                    self.members.discard(consumer)

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(GROUP_RENEW_S)
            try:
                await self.layer.group_add(self.group, self.channel)
            except Exception:  # the next renewal may work; a reconnect replays anyway
                log.exception("websocket: could not renew %s", self.group)


class FeedConsumer(AsyncJsonWebsocketConsumer):
    """One feed: a group to join and, for a team's feed, the team whose events to replay."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.group: str | None = None
        self.team_id: int | None = None
        self.catching_up = True
        self.held: list[dict] = []
        self.replayed: set[int] = set()
        self.catch_up_task: asyncio.Task | None = None
        self.relay: Relay | None = None
        self.gone = False

    def authorize(self, user: AnyUser, params: dict[str, list[str]]) -> tuple[str, int | None]:
        """(group, team whose events to replay or None for all); raises Refused. Sync: ORM."""
        raise NotImplementedError

    async def connect(self) -> None:
        # Accepted first: a close code and a message can only be sent on an open socket.
        await self.accept()
        try:
            user = self.scope.get("user")
            if user is None or not user.is_authenticated:
                raise Refused(
                    CLOSE_UNAUTHENTICATED,
                    "Authentification requise : session expirée ou jeton invalide.",
                )
            params = parse_qs(self.scope.get("query_string", b"").decode("latin1"))
            self.group, self.team_id = await database_sync_to_async(self.authorize)(user, params)
            since = since_param(params)
        except Refused as refusal:
            await self.refuse(refusal)
            return
        relay = Relay.of(self.channel_layer, self.group)
        try:
            # Joined before the stored events are read: nothing falls between the two.
            await relay.add(self)
        except Exception:
            log.exception("websocket: could not join %s", self.group)
            await self.close(code=CLOSE_SERVER_ERROR)
            return
        self.relay = relay
        self.catch_up_task = asyncio.create_task(self.catch_up(since))

    async def catch_up(self, since: int | None) -> None:
        """hello, the replay, then the live events held meanwhile. A task of its own, so
        that the live events keep being taken off the channel (and held) while it runs."""
        try:
            try:
                replay = await database_sync_to_async(replay_plan)(
                    since=since, team_id=self.team_id
                )
            except Refused as refusal:
                await self.refuse(refusal)
                return
            hello: dict = {"type": "hello", "seq": replay.head}
            if self.team_id is not None:
                hello["team"] = self.team_id
            await self.send_json(hello)
            if replay.reload:
                await self.send_json({"type": "reload"})
            for event in replay.events:
                self.replayed.add(event["seq"])
                await self.send(text_data=event_text(event))
            while self.held:
                await self.forward(self.held.pop(0))
            self.catching_up = False  # no await since the last check: nothing is left held
        except asyncio.CancelledError:
            raise
        except Exception:
            if not self.gone:
                log.exception("websocket: replay failed for %s", self.group)
                await self.close(code=CLOSE_SERVER_ERROR)

    async def event_forward(self, message: dict) -> None:
        """A live event from realtime.send, handed over by the relay."""
        if self.gone:
            return
        if self.catching_up:
            self.held.append(message["event"])
        else:
            await self.forward(message["event"])

    async def forward(self, event: dict) -> None:
        seq = event.get("seq")
        if seq in self.replayed:
            self.replayed.discard(seq)  # an event reaches a channel once: forget it now
            return
        await self.send(text_data=event_text(event))

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """The feeds are read-only: writes go through the REST API."""

    async def refuse(self, refusal: Refused) -> None:
        await self.send_json({"type": "error", "message": refusal.message})
        await self.close(code=refusal.code)

    async def disconnect(self, code: int) -> None:
        self.gone = True
        task = self.catch_up_task
        if task is not None and not task.done():
            task.cancel()
        if self.relay is not None:
            self.relay.discard(self)


class LiveFeedConsumer(FeedConsumer):
    """/ws/live/: everything the coordination sees."""

    def authorize(self, user: AnyUser, params: dict[str, list[str]]) -> tuple[str, int | None]:
        live_feed_authorize(user)
        return realtime.group_coordination(), None


class TeamFeedConsumer(FeedConsumer):
    """/ws/team/: the events sent to one team (assignments, alerts)."""

    def authorize(self, user: AnyUser, params: dict[str, list[str]]) -> tuple[str, int | None]:
        team_id = team_feed_team(user, params.get("team", [""])[-1])
        return realtime.group_team(team_id), team_id


class NoSuchFeedConsumer(AsyncWebsocketConsumer):
    """Any other websocket path: a clear refusal rather than a routing traceback."""

    async def connect(self) -> None:
        await self.accept()
        await self.send('{"type": "error", "message": "Fil inconnu : /ws/live/ ou /ws/team/."}')
        await self.close(code=CLOSE_NOT_FOUND)
