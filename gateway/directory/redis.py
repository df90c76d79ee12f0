"""The cluster's agent directory: presence records in Redis, changes told over pub/sub.

Every agent is one Redis hash ``<prefix>a:<name>``: the field ``rec`` holds what its
own node writes (status, skills, capacity, wrap-up...: :meth:`AgentPresence.to_dict`
without the load), and one field per offer (``o:<id>``) or conversation (``c:<id>``)
holds its load, whichever node made it, valued ``protocol|node``. Every change is a
Lua script, so it is atomic: :meth:`RedisDirectory.reserve` checks the agent's status
and capacity and adds the offer in one step, so that no agent is ever over capacity
and no two nodes reserve the last seat, whichever race. Each script publishes the
merged record on ``<prefix>presence``; every node's watchers (its view, its matching
engine) are fed from there, and this node's own changes are told to them at once.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from twisted.internet.defer import Deferred, fail
from twisted.logger import Logger
from zope.interface import implementer

from gateway import logs
from gateway.directory.interfaces import IAgentDirectory
from gateway.directory.records import AgentPresence

Observer = Callable[[str, AgentPresence | None], None]

# Fields of a record that its load decides (the rest are the owner node's).
LOAD_FIELDS = ("offers", "conversations", "protocol_load")

_MERGED = """
local function merged(key)
  local all = redis.call('HGETALL', key)
  local rec, offers, convs, pload, load = nil, {}, {}, {}, {}
  for i = 1, #all, 2 do
    local f, v = all[i], all[i + 1]
    if f == 'rec' then
      rec = cjson.decode(v)
    else
      load[f] = v
      local id = string.sub(f, 3)
      local kind = string.sub(f, 1, 1)
      if kind == 'o' then
        offers[#offers + 1] = id
      else
        convs[#convs + 1] = id
        local proto = string.match(v, '^([^|]*)')
        pload[proto] = (pload[proto] or 0) + 1
      end
    end
  end
  if rec == nil then return nil end
  rec['offers'] = offers
  rec['conversations'] = convs
  rec['protocol_load'] = pload
  rec['load'] = load
  return rec
end
local function tell(channel, origin, name, rec)
  local body = cjson.encode({origin = origin, name = name, record = rec or false})
  redis.call('PUBLISH', channel, body)
  return body
end
"""

# KEYS: agent hash, agents set, channel. ARGV: name, rec JSON, session, origin, mode.
# mode "login" replaces another login's record; "update" changes only its own.
PUBLISH = (
    _MERGED
    + """
local cur = redis.call('HGET', KEYS[1], 'rec')
if cur then
  local c = cjson.decode(cur)
  if c['session'] ~= ARGV[3] then
    if ARGV[5] ~= 'login' then return false end
    redis.call('DEL', KEYS[1])
  end
elseif ARGV[5] ~= 'login' then
  return false
end
redis.call('HSET', KEYS[1], 'rec', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[1])
return tell(KEYS[3], ARGV[4], ARGV[1], merged(KEYS[1]))
"""
)

# KEYS: agent hash, agents set, channel. ARGV: name, session, origin.
WITHDRAW = (
    _MERGED
    + """
local cur = redis.call('HGET', KEYS[1], 'rec')
if not cur or cjson.decode(cur)['session'] ~= ARGV[2] then return false end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
return tell(KEYS[3], ARGV[3], ARGV[1], nil)
"""
)

# KEYS: agent hash, channel. ARGV: name, session, offer id, protocol, origin.
# Returns {1, body} when reserved, {0, body} (the record as it is) when not.
RESERVE = (
    _MERGED
    + """
local rec = merged(KEYS[1])
if rec == nil then return {0, false} end
local ok = rec['session'] == ARGV[2] and rec['status'] == 'available'
  and not rec['wrapping_up']
  and (#rec['offers'] + #rec['conversations']) < rec['capacity']
if ok then
  local limit = rec['protocol_capacity'][ARGV[4]]
  if limit ~= nil and (rec['protocol_load'][ARGV[4]] or 0) >= limit then ok = false end
end
if not ok then return {0, cjson.encode({origin = ARGV[5], name = ARGV[1], record = rec})} end
redis.call('HSET', KEYS[1], 'o:' .. ARGV[3], ARGV[4] .. '|' .. ARGV[5])
return {1, tell(KEYS[2], ARGV[5], ARGV[1], merged(KEYS[1]))}
"""
)

# KEYS: agent hash, channel. ARGV: name, session, origin, now, then ops:
# "+<field>=<value>" adds, "-<field>" removes. The last conversation gone sets idle_since.
LOAD = (
    _MERGED
    + """
local cur = redis.call('HGET', KEYS[1], 'rec')
if not cur then return false end
local rec = cjson.decode(cur)
if rec['session'] ~= ARGV[2] then return false end
local left = false
for i = 5, #ARGV do
  local op = ARGV[i]
  if string.sub(op, 1, 1) == '+' then
    local eq = string.find(op, '=', 1, true)
    redis.call('HSET', KEYS[1], string.sub(op, 2, eq - 1), string.sub(op, eq + 1))
  else
    local field = string.sub(op, 2)
    if redis.call('HDEL', KEYS[1], field) == 1 and string.sub(field, 1, 1) == 'c' then
      left = true
    end
  end
end
local m = merged(KEYS[1])
if left and #m['conversations'] == 0 then
  rec['idle_since'] = tonumber(ARGV[4])
  redis.call('HSET', KEYS[1], 'rec', cjson.encode(rec))
  m['idle_since'] = rec['idle_since']
end
return tell(KEYS[2], ARGV[3], ARGV[1], m)
"""
)

# KEYS: agent hash. ARGV: name, origin. One record as the JSON of a message.
GET = (
    _MERGED
    + """
return cjson.encode({origin = ARGV[2], name = ARGV[1], record = merged(KEYS[1]) or false})
"""
)

# KEYS: agents set, key prefix. ARGV: origin. Every record as the JSON of a message.
ALL = (
    _MERGED
    + """
local out = {}
for _, name in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local rec = merged(KEYS[2] .. name)
  if rec == nil then
    redis.call('SREM', KEYS[1], name)
  else
    out[#out + 1] = cjson.encode({origin = ARGV[1], name = name, record = rec})
  end
end
return out
"""
)

# KEYS: agents set, channel, agent key prefix. ARGV: dead node, origin.
# A node is gone: its agents leave, and the load it made on others' agents goes.
FORGET_NODE = (
    _MERGED
    + """
local suffix = '|' .. ARGV[1]
local gone = 0
for _, name in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local key = KEYS[3] .. name
  local rec = merged(key)
  if rec ~= nil then
    if rec['node'] == ARGV[1] then
      redis.call('DEL', key)
      redis.call('SREM', KEYS[1], name)
      tell(KEYS[2], ARGV[2], name, nil)
      gone = gone + 1
    else
      local changed = false
      for field, value in pairs(rec['load']) do
        if string.sub(value, -#suffix) == suffix then
          redis.call('HDEL', key, field)
          changed = true
        end
      end
      if changed then tell(KEYS[2], ARGV[2], name, merged(key)) end
    end
  end
end
return gone
"""
)


class DirectoryUnavailable(Exception):
    """Redis cannot be reached: the directory cannot be changed now."""


@implementer(IAgentDirectory)
class RedisDirectory:
    """Agents' presence in Redis, shared by every node of a cluster.

    ``redis`` is the node's link (:class:`gateway.cluster.link.RedisLink`: ``script``,
    ``subscribe``, ``available``); ``node`` this node's name, ``prefix`` the keys'.
    Records published from this node are kept here (``own``), their load brought up
    to date from every change Redis reports, and told to the watchers as the same
    objects; other nodes' records arrive as new objects.
    """

    _log = Logger(observer=logs.observer)

    def __init__(self, redis: Any, node: str, prefix: str = "imgw:") -> None:
        self._redis = redis
        self.node = node
        self.prefix = prefix
        self.channel = prefix + "presence"
        self._agents_key = prefix + "agents"
        self._observers: list[Observer] = []
        # This node's agents' records, and each one's load entries (field -> value).
        self.own: dict[str, AgentPresence] = {}
        self.loads: dict[str, dict[str, str]] = {}
        self._logged_in: set[str] = set()
        redis.subscribe(self.channel, self._message)

    def key(self, name: str) -> str:
        """The Redis hash of agent ``name``."""
        return f"{self.prefix}a:{name}"

    # -- IAgentDirectory ----------------------------------------------------

    def publish(self, presence: AgentPresence) -> Deferred:
        """Tell the watchers at once, then record the owner's fields in Redis."""
        name = presence.name
        self.own[name] = presence
        self.loads.setdefault(name, {})
        self._tell(name, presence)
        mode = "update" if presence.session in self._logged_in else "login"
        self._logged_in.add(presence.session)
        return self._run(
            PUBLISH,
            [self.key(name), self._agents_key, self.channel],
            [name, _owner_json(presence), presence.session, self.node, mode],
        )

    def withdraw(self, name: str, session: str) -> Deferred:
        """Forget ``name`` if its record is still of login ``session``."""
        self._logged_in.discard(session)
        known = self.own.get(name)
        if known is not None and known.session == session:
            del self.own[name]
            self.loads.pop(name, None)
            self._tell(name, None)
        return self._run(
            WITHDRAW, [self.key(name), self._agents_key, self.channel], [name, session, self.node]
        )

    def get(self, name: str) -> Deferred:
        """The record of ``name`` as Redis has it, or None."""
        d = self._run(GET, [self.key(name)], [name, self.node])
        return d.addCallback(lambda body: _record(json.loads(body))[1])

    def all(self) -> Deferred:
        """Every record in Redis."""
        d = self._run(ALL, [self._agents_key, self.prefix + "a:"], [self.node])
        return d.addCallback(lambda bodies: [_record(json.loads(b))[1] for b in bodies or ()])

    def watch(self, observer: Observer) -> None:
        """Tell ``observer`` of every change, whichever node made it."""
        self._observers.append(observer)

    # -- load, atomically ---------------------------------------------------

    def reserve(self, presence: AgentPresence, offer: str, protocol: str) -> Deferred:
        """Add offer ``offer`` to the agent's load if it is available and has room.

        Fires True when reserved; False when not (the watchers are told the record as
        it is, so the engine stops proposing the agent).
        """
        d = self._run(
            RESERVE,
            [self.key(presence.name), self.channel],
            [presence.name, presence.session, offer, protocol, self.node],
        )
        return d.addCallback(self._reserved)

    def _reserved(self, result: list) -> bool:
        ok, body = result
        if body:
            self._message(self.channel, body)
        return bool(ok)

    def load(self, presence: AgentPresence, ops: Iterable[str], now: float = 0.0) -> Deferred:
        """Apply load changes: ``+o:<id>=<protocol>``, ``+c:<id>=<protocol>``, ``-o:<id>``...

        Values get this node's name appended (``protocol|node``), so that the load a
        lost node made can be found and removed.
        """
        args = [presence.name, presence.session, self.node, repr(now)]
        args += [f"{op}|{self.node}" if op.startswith("+") else op for op in ops]
        return self._run(LOAD, [self.key(presence.name), self.channel], args)

    def forget_node(self, node: str) -> Deferred:
        """A node is gone: its agents' records and the load it made go; fires with count."""
        return self._run(
            FORGET_NODE,
            [self._agents_key, self.channel, self.prefix + "a:"],
            [node, self.node],
        )

    def changed_here(self, presence: AgentPresence) -> None:
        """Tell the watchers of a change made in place on this node (not yet in Redis)."""
        self._tell(presence.name, presence)

    # -- keeping up ---------------------------------------------------------

    def resync(self) -> Deferred:
        """After Redis came back: write this node's agents again, then read everyone's.

        Watchers are told of every record found, and of the loss of every agent they
        knew that Redis no longer has.
        """
        writes = []
        for name, presence in list(self.own.items()):
            self._logged_in.discard(presence.session)
            writes.append(self.publish(presence))
            entries = self.loads.get(name, {})
            if entries:
                ops = [f"+{field}={value.split('|')[0]}" for field, value in entries.items()]
                writes.append(self.load(presence, ops))
        d = self._run(ALL, [self._agents_key, self.prefix + "a:"], [self.node])
        return d.addCallback(self._reloaded)

    def _reloaded(self, bodies: list) -> list[str]:
        seen = []
        for body in bodies or ():
            self._message(self.channel, body)
            seen.append(json.loads(body)["name"])
        return seen

    def _message(self, channel: str, body: Any) -> None:
        try:
            message = json.loads(body)
            name, presence = _record(message)
        except (ValueError, KeyError, TypeError):
            self._log.warn(
                "bad presence message on {channel}: {body!r}", channel=channel, body=body
            )
            return
        own = self.own.get(name)
        if own is not None:
            if presence is None or presence.session != own.session:
                if presence is None and message.get("origin") != self.node:
                    # Removed by another node (it declared this one lost): publish again.
                    self._logged_in.discard(own.session)
                    self.publish(own)
                    return
                if presence is not None:
                    # A newer login elsewhere: this node's record is no longer current.
                    del self.own[name]
                    self.loads.pop(name, None)
                    self._tell(name, presence)
                return
            # Our own agent: the load is Redis's, the rest is ours.
            own.offers = presence.offers
            own.conversations = presence.conversations
            own.protocol_load = presence.protocol_load
            own.idle_since = presence.idle_since
            self.loads[name] = message["record"].get("load") or {}
            self._tell(name, own)
            return
        self._tell(name, presence)

    def _tell(self, name: str, presence: AgentPresence | None) -> None:
        for observer in self._observers:
            try:
                observer(name, presence)
            except Exception:
                self._log.failure("presence observer failed for {name}", name=name)

    def _run(self, script: str, keys: list[str], args: list[str]) -> Deferred:
        if not self._redis.available:
            return fail(DirectoryUnavailable("redis is not reachable"))
        return self._redis.script(script, keys, args)


def _owner_json(presence: AgentPresence) -> str:
    data = presence.to_dict()
    for field in LOAD_FIELDS:
        data.pop(field, None)
    return json.dumps(data, separators=(",", ":"))


def _record(message: dict) -> tuple[str, AgentPresence | None]:
    name = message["name"]
    data = message.get("record")
    if not data:
        return name, None
    values = {k: v for k, v in data.items() if k != "load"}
    # Lua's JSON has one empty table for [] and {}.
    for key in ("skills", "protocol_capacity", "protocol_load"):
        if not values.get(key):
            values[key] = {}
    return name, AgentPresence.from_dict(values)
