"""The tools offered to one reply, and running the model's calls for the person who asked.

Each call is checked when it runs, against the asker (the human whose message started
the reply, their roles read from Discord at each model turn's first server tool) and the bot:
the tool's family must be on here, both must hold the tool's permissions in the channel
(a tool acting on the server or on another channel checks its permission there itself),
and a tool that changes something is withheld once the reply has read text others wrote
(web pages, memories, titles, names): actions come only from what the asker wrote. A
reply's calls are bounded: `MAX_CALLS` run per model turn, together within `ROUND_TIME`
seconds, and at most `MAX_CHANGES` calls that change something per reply, never the
same one twice (a call the tool or Discord refused changed nothing: it counts for
neither). A call that is refused, fails or times out becomes an error result the model
explains; it never ends the reply. A tool whose cog was reloaded meanwhile does not run.
A change that timed out, failed or met a Discord server error may have been made: the
model is told its outcome is unknown, then and if called again; after a change (or one
that may have been made) the asker is read again, so the next call sees it. A web call
(search, link) is a paid request whose answer does not go stale within a reply: the
same call again is answered with "see above", not made again, and a reply makes at most
`MAX_WEB` of them.
Changes are recorded for `/ai audit` (memory is private and is not).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

import discord
from google.genai import types
from pydantic import BaseModel, ValidationError

from cogs.ai.tools.audit import FAILED, UNKNOWN, ToolAudit
from cogs.ai.tools.roles import permission_name
from utils.db import DB_ERRORS
from utils.errors import BotError
from utils.memory.records import Recalled
from utils.text import truncate
from utils.tools import (
    Asker,
    Done,
    Family,
    Source,
    Tool,
    ToolRefused,
    ToolRegistry,
    shown,
)

log = logging.getLogger(__name__)

MAX_SOURCES = 5
MAX_TITLE = 60  # characters of a source's title shown
# Characters of a line of the small print: under half a message, as a reply is split at a
# line break in a message's second half if any, so none is cut (its rest: full-size text).
MAX_LINE = 980
MAX_LINK = 800  # characters of a source's address shown: its link fits on such a line
MAX_CALLS = 8  # calls of one model turn that run; the model is told the rest were not
MAX_CHANGES = 6  # calls that change something, per reply
MAX_WEB = 6  # web requests (searches, links: each one paid), per reply
ROUND_TIME = 90.0  # seconds one turn's calls may take together (at least one call's timeout)
READ_OUTSIDE = (
    "Not done: this reply has read text written by others (a web page, a memory, a title), "
    "and actions are only taken on what the person asked directly. Ask them to confirm in "
    "a new message."
)
TOO_MANY_CALLS = f"Not run: at most {MAX_CALLS} tool calls run per turn. Ask for fewer at once."
TOO_MANY_CHANGES = (
    f"Not done: one reply makes at most {MAX_CHANGES} changes. Ask them to send a new "
    "message for the rest."
)
REPEATED = "Not done again: this reply already made that exact call."
ALREADY_ASKED = "Not asked again: this reply already made that exact call; see its result above."
TOO_MANY_WEB = (
    f"Not asked: one reply makes at most {MAX_WEB} web requests. Answer from what was found, "
    "or ask them to send a new message for the rest."
)
_ASKED_ONCE = (Family.SEARCH, Family.LINKS)  # paid requests; their answers keep for a reply
UNKNOWN_OUTCOME = (
    "Whether it was done is unknown: it may have been. Tell them so, and to check before "
    "asking again."
)
UNKNOWN_REPEATED = (
    "Not run again: this reply already tried that exact call, and whether it was done is "
    "unknown. Tell them so, and to check before asking again."
)
OUT_OF_TIME = "Not run: this turn's tool calls took too long together."
RELOADED = "The {family} tools were unloaded or reloaded meanwhile; ask again in a new message."
NOT_ANSWERING = "Discord is not answering properly; try again later."
REFUSED_BY_DISCORD = (
    "Discord did not accept that (not allowed there, or a limit reached); the same again "
    "would fail too."
)
# The backslashes `shown` (discord.utils.escape_markdown) puts before markdown in a name.
_MARKDOWN_ESCAPE = re.compile(r"\\([\\_*~|`>#\[\s-])")


class Toolbox:
    """The tools one reply may use, the calls it made, and what to show under it."""

    def __init__(
        self,
        registry: ToolRegistry,
        asker: Asker,
        families: frozenset[Family],
        audit: ToolAudit | None = None,
        *,
        families_now: Callable[[], Awaitable[frozenset[Family]]] | None = None,
        timeout: float = 60.0,
        round_time: float = ROUND_TIME,
    ) -> None:
        """`families` are on when the reply starts; `families_now` says which are on as a
        call runs (switched off meanwhile: refused)."""
        self.families_now = families_now
        self.timeout = timeout  # the most any call may take
        self.round_time = max(round_time, timeout)  # the most one turn's calls take together
        self.asker = asker
        self.audit = audit
        in_guild = asker.guild is not None
        self.tools = {
            tool.name: tool
            for tool in registry
            if tool.family in families and (in_guild or not tool.guild_only)
        }
        # Taken now: a cog reloaded meanwhile unregisters its tools (its old ones don't run).
        self._registry = registry
        self._declarations = {name: registry.declaration(name) for name in self.tools}
        self.read_outside = False
        self._fresh: Asker | None = None  # the asker as Discord has them now (`_asker_now`)
        self._fetching = asyncio.Lock()  # one fetch for the calls of a turn run together
        self._changes: set[tuple[str, str]] = set()  # changing calls made: tool, arguments
        self._maybe_made: set[tuple[str, str]] = set()  # of those, the ones of unknown outcome
        self._asked: set[tuple[str, str]] = set()  # web calls made: tool, arguments
        self.notes: list[str] = []
        self.sources: list[Source] = []
        self.forgets_exchange = False  # the asker had all forgotten (`Done.forgets_exchange`)

    def __bool__(self) -> bool:
        return bool(self.tools)

    def saw_memories(self, recalled: Iterable[Recalled]) -> None:
        """Memories put in the prompt: one by or about anyone but the asker (a conversation
        memory holds one person's exchanges with the bot) is outside text."""
        if any(memory.author_id != self.asker.user.id for memory in recalled):
            self.read_outside = True

    def declarations(self) -> list[types.FunctionDeclarationDict]:
        """What the model may call now (changing tools are gone once outside text was read)."""
        return [
            self._declarations[name]
            for name, tool in self.tools.items()
            if not (tool.changes and self.read_outside)
        ]

    async def run_all(self, calls: list[types.FunctionCall]) -> list[types.PartDict]:
        """Run one model turn's calls in order; their results as function-response parts.

        The calls of one turn were all written before any result was read, so text that
        a result brings in withholds actions only from the next turns. Past `MAX_CALLS`,
        or once the turn has taken `round_time`, a call is answered without running."""
        self._fresh = None  # the asker may have lost a role (or left) since the last turn
        parts: list[types.PartDict] = []
        outside = False
        loop = asyncio.get_running_loop()
        ends = loop.time() + self.round_time
        for n, call in enumerate(calls):
            name = call.name or ""
            left = ends - loop.time()
            if n >= MAX_CALLS:
                result, read = {"refused": TOO_MANY_CALLS}, False
            elif left <= 0:
                result, read = {"error": OUT_OF_TIME}, False
            else:
                result, read = await self._run(name, call.args or {}, left)
            outside |= read
            response: types.FunctionResponseDict = {"name": name, "response": result}
            if call.id:
                response["id"] = call.id
            parts.append({"function_response": response})
        self.read_outside |= outside
        return parts

    async def _run(
        self, name: str, args: dict[str, Any], left: float
    ) -> tuple[dict[str, Any], bool]:
        """A call's result for the model (given at most `left` seconds), and whether it
        carries outside text."""
        tool = self.tools.get(name)
        if tool is None:
            return {"error": f"There is no tool named {name!r} here."}, False
        if self._registry.get(name) is not tool:
            return {"error": RELOADED.format(family=tool.family)}, False
        change = None
        try:
            async with asyncio.timeout(min(tool.timeout, self.timeout, left)):
                asker = await self._check(tool)
                params = tool.params.model_validate(args)
                if tool.changes:
                    change = self._count_change(tool, params)
                elif tool.family in _ASKED_ONCE:
                    call = (tool.name, params.model_dump_json())
                    if call in self._asked:
                        return {"refused": ALREADY_ASKED}, False
                    if len(self._asked) >= MAX_WEB:
                        return {"refused": TOO_MANY_WEB}, False
                    self._asked.add(call)
                done = await tool.call(asker, params)
        except ToolRefused as refused:
            self._unmade(change)
            await self._record(tool, args, f"refused: {refused}", ok=False)
            return {"refused": str(refused)}, False
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}" for e in error.errors()
            )
            return {"error": f"Bad arguments ({problems})."}, False
        except TimeoutError:
            log.warning("tool %s timed out", name)
            stopped = f"{name} took too long and was stopped."
            return await self._unsure(tool, args, change, "timed out", stopped), False
        except BotError as error:  # its message is meant for people
            self._unmade(change)
            await self._record(tool, args, str(error), ok=False)
            return {"error": str(error)}, False
        except discord.Forbidden:
            self._unmade(change)
            await self._record(tool, args, "Discord refused: missing permission", ok=False)
            return {"error": "Discord refused: the bot lacks a permission for that."}, False
        except discord.HTTPException as error:
            log.warning("tool %s: Discord answered %s", name, error.status)
            what = f"Discord error {error.status}"
            if error.status >= 500:  # it may have been done before Discord failed
                return await self._unsure(tool, args, change, what, NOT_ANSWERING), False
            self._unmade(change)
            await self._record(tool, args, what, ok=False)
            if error.status == 429:
                return {"error": NOT_ANSWERING}, False
            return {"error": REFUSED_BY_DISCORD}, False
        except Exception:  # a bug in one tool: the model says it failed, the reply goes on
            log.exception("tool %s failed", name)
            failed = f"{name} failed unexpectedly."
            return await self._unsure(tool, args, change, "failed", failed), False
        if tool.changes:  # the asker's roles, say, may have changed
            self._fresh = None
        await self._record(tool, args, done.note or "done", ok=True)
        self._show(done)
        self.forgets_exchange |= done.forgets_exchange
        return done.result, done.outside

    async def _check(self, tool: Tool[Any]) -> Asker:
        """The asker as the tool runs for them, once it may run (`ToolRefused` if not)."""
        if tool.changes and self.read_outside:
            raise ToolRefused(READ_OUTSIDE)
        if self.families_now is not None and tool.family not in await self.families_now():
            raise ToolRefused(f"The {tool.family} tools were switched off here meanwhile.")
        asker = await self._asker_now(tool)
        if not (tool.asker_permissions or tool.bot_permissions):
            return asker
        member = asker.member()
        channel = asker.channel
        if not isinstance(channel, discord.abc.GuildChannel | discord.Thread):
            raise ToolRefused("That only works in a server channel.")
        mine = channel.permissions_for(member)
        if missing := [p for p in tool.asker_permissions if not getattr(mine, p)]:
            names = " and ".join(permission_name(p) for p in missing)
            raise ToolRefused(f"{member.display_name} needs the {names} permission for that.")
        bots = channel.permissions_for(member.guild.me)
        if missing := [p for p in tool.bot_permissions if not getattr(bots, p)]:
            names = " and ".join(permission_name(p) for p in missing)
            raise ToolRefused(f"The bot needs the {names} permission for that.")
        return asker

    async def _asker_now(self, tool: Tool[Any]) -> Asker:
        """For a server tool, the asker with their roles as they are now: the message's
        copy may be minutes old, and the bot hears of no member's role change (it has no
        members intent), so a permission taken away since would still count. Fetched
        once a model turn (its calls were written together), at its first server tool,
        and again after a change (a role given): a reply's turns can span minutes of the
        model thinking."""
        asker, guild = self.asker, self.asker.guild
        if guild is None or not tool.guild_only or not isinstance(asker.user, discord.Member):
            return asker
        async with self._fetching:
            if self._fresh is None:
                try:
                    member = await guild.fetch_member(asker.user.id)
                except discord.NotFound as error:
                    name = asker.user.display_name
                    raise ToolRefused(f"{name} is no longer a member of this server.") from error
                self._fresh = dataclasses.replace(asker, user=member)
        return self._fresh

    def _count_change(self, tool: Tool[Any], params: BaseModel) -> tuple[str, str]:
        """Take one of the reply's changes for this call (refused: a repeat, or none left)."""
        call = (tool.name, params.model_dump_json())
        if call in self._changes:
            raise ToolRefused(UNKNOWN_REPEATED if call in self._maybe_made else REPEATED)
        if len(self._changes) >= MAX_CHANGES:
            raise ToolRefused(TOO_MANY_CHANGES)
        self._changes.add(call)
        return call

    def _unmade(self, change: tuple[str, str] | None) -> None:
        """A change that failed before anything changed: it is not used up."""
        if change is not None:
            self._changes.discard(change)

    async def _unsure(
        self,
        tool: Tool[Any],
        args: dict[str, Any],
        change: tuple[str, str] | None,
        what: str,
        error: str,
    ) -> dict[str, Any]:
        """The result of a call that failed part way (`what` for the audit, `error` for the
        model): a change it was making may have been made."""
        outcome = FAILED
        if change is not None:
            self._maybe_made.add(change)
            self._fresh = None
            what, error = f"{what} (may have been done)", f"{error} {UNKNOWN_OUTCOME}"
            outcome = UNKNOWN
        await self._record(tool, args, what, ok=outcome)
        return {"error": error}

    def _show(self, done: Done) -> None:
        if done.note and done.note not in self.notes:
            self.notes.append(done.note)
        known = {source.uri for source in self.sources}
        for source in done.sources:
            if len(known) < MAX_SOURCES and linkable(source.uri) and source.uri not in known:
                known.add(source.uri)
                self.sources.append(source)

    async def _record(self, tool: Tool[Any], args: dict[str, Any], result: str, ok: int) -> None:
        guild = self.asker.guild
        if self.audit is None or guild is None or not tool.changes or tool.family == Family.MEMORY:
            return
        try:
            await self.audit.record(
                guild.id,
                self.asker.channel.id,
                self.asker.user.id,
                tool.name,
                json.dumps(args, ensure_ascii=False, default=str)[:500],
                # As plain text: the audit escapes what it shows (`settings.plain`), so a
                # name escaped for the line under the reply would show its backslashes.
                _MARKDOWN_ESCAPE.sub(r"\1", result)[:300],
                ok=ok,
            )
        except DB_ERRORS:  # the reply goes on; the log says what the audit lacks
            log.exception("could not record the %s call", tool.name)


def footer(notes: list[str], sources: list[tuple[str, str]]) -> str:
    """The small print under a reply: what the tools did, then the pages it drew on, as
    links that do not unfurl into embeds (the first title of each web address, short and
    made safe as a tool's note is, `shown`; no address in it), on lines of `MAX_LINE`."""
    lines = _small_print("-# ", notes)
    links: dict[str, str] = {}
    for title, uri in sources:
        if len(links) == MAX_SOURCES:
            break
        if not linkable(uri) or uri in links:
            continue
        if "://" in title:  # a bare address in a title would unfurl: show the site instead
            title = urlsplit(uri).hostname or ""
        label = truncate(" ".join(title.split()), MAX_TITLE).replace("[", "(").replace("]", ")")
        links[uri] = f"[{shown(label) or 'link'}](<{uri}>)"
    lines += _small_print("-# Sources: ", list(links.values()))
    return "\n\n" + "\n".join(lines) if lines else ""


def _small_print(lead: str, items: list[str]) -> list[str]:
    """`items` after `lead`, " · " between them, on as many lines as `MAX_LINE` takes."""
    lines: list[str] = []
    for item in items:
        if lines and len(lines[-1]) + len(" · ") + len(item) <= MAX_LINE:
            lines[-1] += " · " + item
        else:
            lines.append(("-# " if lines else lead) + item)
    return lines


def linkable(uri: str) -> bool:
    """A web address that can be shown as a link without breaking out of `<...>`, in one
    message."""
    return (
        uri.startswith(("https://", "http://"))
        and len(uri) <= MAX_LINK
        and not any(c in "<>" or c.isspace() for c in uri)
    )
