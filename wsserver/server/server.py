"""Listening for connections: :func:`serve` and the :class:`Server` it returns."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import errno
import functools
import inspect
import ipaddress
import logging
import math
import os
import secrets
import socket
import ssl as ssl_module
import stat
import time
import types
import weakref
from asyncio import sslproto
from collections.abc import Awaitable, Callable, Container, Coroutine, Generator, Iterable, Sequence
from typing import Any, cast

from ..app.forms import MAX_PARTS as MAX_FORM_PARTS
from ..app.request import Request
from ..app.routing import Router, ServerHook, route_of
from ..asgi import ASGIApplication, is_asgi_app
from ..asgi.http import ASGIApp
from ..broker import Broker, MemoryBroker, broker_from_url
from ..broker.base import check_topic
from ..config import Config, served_path
from ..errors import NOT_FAILURES, ConfigError, LifespanFailure, only, passed_on, passes_through
from ..logs import exit_said, peer, printable, protocol_logger
from ..protocol.frames import is_valid_close_code
from ..protocol.http import Response
from ..protocol.proxy import TrustedProxies
from ..protocol.tls_info import TLSInfo
from . import stats as stats_module
from .app_tasks import adopt_context, calling_app_task, start_app_task
from .deadlines import Deadlines
from .http_protocol import HttpProtocol
from .metrics import Metrics
from .response_headers import ResponseHeaders
from .stats import ServerStats
from .status import StatusBoard
from .tls import (
    cipher_suites,
    connection_tls,
    failure_hint,
    refuse_tls_settings,
    refuse_unusable,
    say_if_not_valid,
    served_certificate,
    ssl_context,
    watch_handshakes,
)
from .tls_start import TLSStart
from .tokens import NOT_STORED, has_token, unauthorized
from .topics import Topics
from .transports import unsent_bytes
from .websocket import SENDS_PER_TURN, Message, WebSocket
from .websocket_protocol import WebSocketProtocol

__all__ = ["Server", "serve"]

logger = logging.getLogger("wsserver.server")

#: Bytes read from a socket at most at once (asyncio's own default).
READ_SIZE = 256 * 1024

#: How many times a libuv loop (uvloop) watches each listening socket. libuv
#: accepts one connection per watcher and loop iteration (since 1.45), so with
#: a single watcher every new connection costs an iteration of its own: a poll,
#: a wake-up of its client, nothing done in batches. Each further watcher has a
#: duplicate of the socket's descriptor (the same socket, one accept queue), and
#: an iteration takes up to this many waiting connections. Where fewer wait, the
#: watchers left over each find nothing to accept (one system call each).
LIBUV_ACCEPT_WATCHERS = 8

#: The most connections asyncio's selector loops accept in one turn (see _listen()).
ACCEPT_BATCH = 100

#: A restart: how long (at most ``timeout_keep_alive``) a kept-alive
#: connection idle as the server stops taking connections is kept open for
#: a request the client may have sent meanwhile (answered, then closed). One
#: closed at that instant lost such a request unanswered.
RESTART_IDLE_DRAIN = 1.0

#: Shutdown: how long a task cancelled at the end of the grace has to end
#: (its ``finally:`` clauses, which may await); one still running then is
#: left running, with a warning (it caught the CancelledError).
CANCELLED_GRACE = 1.0


class _DefaultHost(str):
    """serve()'s default host: the same address given is told apart from it
    (with ``sock=`` or ``uds=``, a host given is refused, the default is not)."""


class _DefaultPort(int):
    """serve()'s default port (as :class:`_DefaultHost`)."""


_DEFAULT_HOST: str = _DefaultHost("127.0.0.1")
_DEFAULT_PORT: int = _DefaultPort(8000)


class Server:
    """A listening WebSocket server.

    Use it as ``async with serve(routes, host, port) as server:`` or
    ``server = await serve(...)``. ``await server.close()`` shuts it down
    gracefully: it stops accepting, answers pending handshakes with 503,
    closes every WebSocket with 1001, gives handlers ``shutdown_timeout``
    seconds, then cancels them and aborts what is left.
    """

    def __init__(
        self,
        app: Router | ASGIApplication,
        host: str | Sequence[str] | None,
        port: int,
        config: Config,
        *,
        ssl: ssl_module.SSLContext | None = None,
        sock: socket.socket | None = None,
        uds: str | None = None,
        broker: Broker | None = None,
        listen: bool = True,
    ) -> None:
        #: A namespace for the application's state (an on_startup hook's pool,
        #: found by handlers at ``request.server.ctx``), as ``request.ctx`` is a
        #: WebSocket's or a request's: its attributes are the application's, and typed Any.
        self.ctx = types.SimpleNamespace()
        #: What the server serves: a Router, or an ASGI application (one is None).
        self.router = app if isinstance(app, Router) else None
        self.asgi = app if isinstance(app, ASGIApplication) else None
        self.host = host
        self.requested_port = port
        self.config = config
        self.deflate_settings = config.deflate_settings()
        self.ssl = ssl
        #: The certificate (PEM) each of the server's TLS contexts serves (an
        #: SNI callback may switch to another) and the numbers of their cipher
        #: suites, for request.tls (see tls_of()); the main context's found at start.
        #: Kept while the context lives: a callback may make one per connection.
        self._served_certificates: weakref.WeakKeyDictionary[ssl_module.SSLContext, str | None] = (
            weakref.WeakKeyDictionary()
        )
        self._cipher_suites: weakref.WeakKeyDictionary[ssl_module.SSLContext, dict[str, int]] = (
            weakref.WeakKeyDictionary()
        )
        self._tls_failed = False
        #: ssl_certfile when the context is the one the ssl_* settings made (see
        #: serve()), whose chain is then served: not an ssl= context's, which
        #: ignores the settings (one from the environment, say).
        self._served_certfile: str | None = None
        #: The context the loop does TLS with on the sockets accept_socket()
        #: is given: none when a PROXY protocol header comes first (TLSStart
        #: starts TLS after it) ...
        self._handed_ssl = None if config.proxy_protocol else ssl
        #: ... and on those the server accepts: none either over asyncio's
        #: own loops, where TLSStart starts it (see start()).
        self._accept_ssl = self._handed_ssl
        self.sock = sock
        self.uds = uds
        #: The Unix socket this server created at ``uds`` (its file is removed at the end).
        self._unix_sock: socket.socket | None = None
        #: False: no listening socket; connections come through accept_socket() only.
        self.listen = listen
        self._started = False
        #: The Router's on_startup hooks ran (its on_shutdown hooks are due).
        self._hooks_started = False
        #: Held while start() runs: a second start() or a close() waits for it.
        self._starting = asyncio.Lock()
        #: The task running a Router's startup hooks, while they run (see close()).
        self._starter: asyncio.Task[Any] | None = None
        #: The task stopping what a start that does not serve started (its
        #: shutdown hooks), while it runs (see close()).
        self._undoing: asyncio.Task[None] | None = None
        #: Set by a close() from outside the start while one is under way: the
        #: start stops before it listens (see _unless_closed()).
        self._start_stopped: asyncio.Future[None] | None = None
        #: The proxies whose forwarding headers are believed (None: proxy_headers off).
        self.trusted_proxies = (
            TrustedProxies(config.forwarded_allow_ips) if config.proxy_headers else None
        )
        #: The peers whose PROXY protocol headers are believed (None: proxy_protocol off).
        self.proxy_protocol_peers = (
            TrustedProxies(config.forwarded_allow_ips) if config.proxy_protocol else None
        )
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        self._server: asyncio.base_events.Server | None = None
        #: The further watchers of the listening sockets on a libuv loop
        #: (LIBUV_ACCEPT_WATCHERS); closed with ``_server``.
        self._watchers: list[asyncio.AbstractServer] = []
        #: Every open connection, in whichever phase.
        self.connections: set[HttpProtocol | WebSocketProtocol] = set()
        #: How many of them are answered (all of the answer sent on) and only
        #: drop what their client still sends before closing
        #: (HttpProtocol.close_transport()), or, over TLS, are closed and wait
        #: for their client's close_notify: no load.
        self.lingering = 0
        #: TLS connections accepted but not registered yet (connection_made()
        #: comes once the TLS handshake is done), each with the task that
        #: accepts it, or None (see _make_protocol()). Weak: the protocol of a
        #: handshake that fails is never registered.
        self._handshaking: weakref.WeakKeyDictionary[HttpProtocol, asyncio.Task[Any] | None] = (
            weakref.WeakKeyDictionary()
        )
        self._websockets: set[WebSocketProtocol] = set()
        #: Those of _websockets that are the server's own endpoint's (the
        #: status page's feeds), not the application's.
        self._own_websockets: set[WebSocketProtocol] = set()
        #: ASGI applications' runs and Router WebSocket handlers not over yet
        #: (they may outlive their connections): shutdown waits for them.
        self.app_tasks: set[asyncio.Task[None]] = set()
        #: The counters (see :meth:`stats`), every WebSocket route's there from
        #: the start (at 0: a metric's series, in every worker, before its
        #: first connection).
        self.counters = ServerStats()
        if self.router is not None:
            for route in self.router.routes:
                if route.is_websocket:
                    self.counters.route(route.name)
        elif self.asgi is not None:
            self.counters.route("asgi")
        #: Told of each application failure (:meth:`app_failed`) with the
        #: problem, the exception if any, and the connection's transport:
        #: TestClient raises them in the test.
        self.app_failure_listeners: list[
            Callable[[str, BaseException | None, asyncio.BaseTransport | None], None]
        ] = []
        #: The last figures gathered (see recent_stats()): when, by the
        #: monotonic clock and by the wall clock (stats_taken()), and they.
        self._recent_stats: tuple[float, float, dict[str, Any]] | None = None
        self._gathering: asyncio.Task[dict[str, Any]] | None = None
        #: Messages publish() handed on (one per call, one per local delivery)
        #: since it last gave the loop a turn (see SENDS_PER_TURN).
        self._published = 0
        #: Requests received (HTTP requests and upgrade requests), for limit_max_requests.
        self.requests = 0
        #: How many this server takes: limit_max_requests and its share of
        #: limit_max_requests_jitter, drawn here (each worker its own); None: no limit.
        self.request_limit = (
            None
            if config.limit_max_requests is None
            # (Not random's: an application that seeds it would give every worker one number.)
            else config.limit_max_requests + secrets.randbelow(config.limit_max_requests_jitter + 1)
        )
        #: Called instead of closing when limit_max_requests is reached (a
        #: worker asks its supervisor for a replacement); None: close.
        self.on_request_limit: Callable[[], None] | None = None
        self._limit_task: asyncio.Task[None] | None = None
        #: The headers every response and 101 gets (Date, Server, configured ones).
        self.response_headers = ResponseHeaders(
            server_header=config.server_header,
            date_header=config.date_header,
            headers=config.headers,
        )
        #: The server's own endpoints (metrics, status page), served before the app's.
        self.builtins: Router | None = None
        self.metrics: Metrics | None = None
        self.status: StatusBoard | None = None
        if config.metrics_path is not None or config.status_path is not None:
            self.builtins = Router()
        if config.metrics_path is not None:
            self.metrics = Metrics(self)
            assert self.builtins is not None
            metrics_path = served_path(config.metrics_path)
            self.builtins.add_route(self._serve_metrics, metrics_path, name="_metrics")
        if config.status_path is not None:
            status_path = served_path(config.status_path)
            self.status = StatusBoard(self, status_path, config.status_token)
            assert self.builtins is not None
            self.status.add_routes(self.builtins)
        elif config.status_token is not None:
            logger.warning("status_token is set but status_path is not: there is no status page")
        if config.metrics_token is not None and config.metrics_path is None:
            logger.warning("metrics_token is set but metrics_path is not: there are no metrics")
        if config.compression is None and (moot := _set_away(config, "compression_")):
            # (A WEBSOCKET_COMPRESSION_LEVEL, a --compression-level for a
            # Router, whose compression is off unless asked for.)
            logger.warning(
                "%s set but compression is off: nothing is compressed (compression"
                " 'deflate', --compression deflate, turns it on)",
                moot,
            )
        if config.limit_max_requests_jitter and config.limit_max_requests is None:
            logger.warning(
                "limit_max_requests_jitter is set but limit_max_requests is not: "
                "no process is replaced"
            )
        if (
            not (config.proxy_headers or config.proxy_protocol)
            and config.forwarded_allow_ips
            != Config.__dataclass_fields__["forwarded_allow_ips"].default
        ):
            # (A uvicorn deployment's: uvicorn reads X-Forwarded-* unasked.)
            logger.warning(
                "forwarded_allow_ips is set but neither proxy_headers nor proxy_protocol is: "
                "no proxy's word is read (--proxy-headers reads X-Forwarded-* and Forwarded; "
                "on by default in uvicorn, not here)"
            )
        trusted = self.trusted_proxies
        if trusted is not None and any(n.prefixlen == 0 for n in trusted.networks):
            # (Each hop trusted, the walk from the right skips them all.)
            logger.warning(
                "forwarded_allow_ips %r trusts every address: the leftmost hop of a forwarding"
                " header is believed, which a client writes itself (X-Forwarded-For: 6.6.6.6);"
                " '*' trusts every peer and believes the last hop only",
                config.forwarded_allow_ips,
            )
        if self.builtins is not None and self.router is not None:
            warn_of_hidden_routes(self.router, self.builtins)
        if config.root_path and self.router is not None:
            logger.warning(
                "root_path %r is given to ASGI applications (their scope's): a Router's "
                "routes and url_for() do not use it",
                config.root_path,
            )
        if self.asgi is not None and config.max_form_parts != MAX_FORM_PARTS:
            logger.warning(
                "max_form_parts %d bounds a Router's request.form and request.files: an ASGI"
                " application parses its own (Starlette's request.form(max_fields=...))",
                config.max_form_parts,
            )
        router = self.router
        if config.lifespan == "off" and router and (router.startup_hooks or router.shutdown_hooks):
            # (uvicorn's --lifespan off runs no startup: Starlette's on_startup
            # handlers neither. A Router's hooks are not an ASGI lifespan.)
            logger.warning(
                "lifespan 'off' is an ASGI application's: a Router's on_startup and "
                "on_shutdown hooks run all the same"
            )
        if (broker is None or isinstance(broker, MemoryBroker)) and (
            moot := _set_away(config, "broker_")
        ):
            logger.warning(
                "%s set but the broker is this process's (memory): they are a Redis"
                " broker's (broker redis://..., --broker)",
                moot,
            )
        #: Publish/subscribe: this server's topics, joined to others by the broker.
        self.pubsub = Topics(
            broker if broker is not None else MemoryBroker(),
            config.max_topic_size,
            config.max_topics,
        )
        #: Set by close(): no more connections are accepted.
        self.closing = False
        #: What close() closes WebSockets with: 1001 (going away) or 1012 (restart).
        self.close_code = 1001
        #: A restart keeps kept-alive connections idle a moment (see
        #: RESTART_IDLE_DRAIN): while so, HttpProtocol.shutdown() leaves them open.
        self.draining = False
        #: What each on_shutdown hook and the ASGI lifespan shutdown may take
        #: (then cancelled); None: ``shutdown_timeout`` + ``close_timeout``,
        #: even in a quick shutdown (``close(0)``: what they release, they
        #: release). The test client sets it to its own bound.
        self.services_limit: float | None = None
        #: Set once close() has finished (or closed a server never started).
        self._closed = asyncio.Event()
        # The shutdown under way: one, whoever calls close() and however often;
        # the tasks that called it (a handler closing its server), and what
        # tells the shutdown of a new one.
        self._closing: asyncio.Task[None] | None = None
        self._close_callers: set[asyncio.Task[Any]] = set()
        # Those of them that are the application's (a handler, an ASGI run):
        # serve_forever() lets them answer before it returns.
        self._app_close_callers: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()
        self._callers_changed: asyncio.Future[None] | None = None
        #: The tasks the shutdown cancelled past its grace (not those an
        #: application cancelled itself meanwhile): their clients get a 503.
        self.cut_off: set[asyncio.Task[Any]] = set()
        #: The mistakes said at WARNING once already (_say_first_time(), no_proxy_header()).
        self._told: set[str] = set()
        #: What every connection reads into (one at a time: one loop, one thread).
        self.read_buffer = memoryview(bytearray(READ_SIZE))
        self._tls_read_buffer: memoryview | None = None
        #: open_timeout of the connections in the HTTP phase (None: no limit),
        #: then keepalive: when each WebSocket is due a ping, and its pong.
        self.open_deadlines: Deadlines[HttpProtocol] | None = None
        self.keep_alive_deadlines: Deadlines[HttpProtocol] = None  # type: ignore[assignment]
        self.ping_deadlines: Deadlines[WebSocketProtocol] | None = None
        self.pong_deadlines: Deadlines[WebSocketProtocol] | None = None
        #: When each idle compressing WebSocket's compressor is released.
        self.compressor_deadlines: Deadlines[WebSocketProtocol] | None = None

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> Server:
        """Start listening (does nothing if already started, or closed before it started).

        Calls that overlap (``serve_forever()`` in a task and an awaited
        ``start()``) start it once: the later ones wait for the first. A
        :meth:`close` while it runs an ASGI lifespan startup or a Router's
        ``on_startup`` hooks cancels them: it then returns without listening.

        Raises:
            OSError: it cannot listen (the port is taken, say).
            wsserver.LifespanFailure: an ASGI application's startup failed.
            RuntimeError: it was started, then closed: a server serves once.
        """
        overlapping = self._starting.locked()  # (the start under way is this call's too)
        async with self._starting:
            if self._started and self.closing and not overlapping:
                raise RuntimeError("the server is closed (or closing): make a new one")
            if not self._started and not self.closing:
                await self._start()
        return self

    async def _start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._start_stopped = self.loop.create_future()
        if isinstance(self.loop, asyncio.selector_events.BaseSelectorEventLoop):
            # (Their TLS layer's read buffer, 256 KiB resident, would be a
            # handshake's until it ends or fails: see tls_start.)
            self._accept_ssl = None
        if self.ssl is not None:  # (for request.tls, before any connection: a handshake in memory)
            served = self._served_certificates[self.ssl] = served_certificate(self.ssl)
            # (Each worker: SIGHUP's renewed files too; the chain of ssl_certfile's.)
            say_if_not_valid(served, self._served_certfile)
        try:
            # The broker first: the ASGI lifespan's startup may publish, as
            # may its shutdown, which comes before the broker's detach.
            await self.pubsub.start()
            if self.asgi is not None:
                # (Raises LifespanFailure.)
                startup = self.loop.create_task(self.asgi.startup(self))
                await self._unless_closed(startup, "the ASGI lifespan startup")
            await self._start_serving()
        except _ClosedInStart:
            # A startup hook, or a close() from elsewhere, closed the server: it never listens.
            await self._undo_start()
            self._closed.set()
            return
        except BaseException:  # (cancelled too: a stop signal during the start)
            # It never served: undo what started (the app hears its lifespan end).
            await self._undo_start()
            raise
        self._started = True
        if self.request_limit is not None and self.config.limit_max_requests_jitter:
            logger.info(
                "replaced after %d requests (limit_max_requests %d, jitter up to %d)",
                self.request_limit,
                self.config.limit_max_requests,
                self.config.limit_max_requests_jitter,
            )

    async def _undo_start(self) -> None:
        """_stop_services() for a start that does not serve, in a task of its
        own named in its context (as the shutdown's): a shutdown hook's
        close(), through wait_for() too, is known to be part of it, and
        returns at once rather than wait for the start that waits for it."""
        self._undoing = start_app_task(self.loop, self._stop_services())
        try:
            await self._undoing
        finally:
            self._undoing = None

    async def _stop_services(self, limit: float | None = None) -> None:
        """Stop what start() started besides listening: the timers, a Router's
        shutdown hooks, the application's lifespan, the broker (detached after
        them: they may publish), and last the metrics and status tasks (the
        metrics' last copy counts a failed lifespan shutdown). Each hook and
        the lifespan shutdown have ``limit`` seconds (None:
        ``shutdown_timeout`` + ``close_timeout``).

        Each is stopped even if one before failed (a broker that fails to
        detach does not skip the lifespan shutdown); the first failure is
        raised at the end.
        """
        self._close_deadlines()
        if limit is None:
            limit = self.config.shutdown_timeout + self.config.close_timeout
        steps: list[Callable[[], Awaitable[None]]] = []
        if self._hooks_started:
            steps.append(functools.partial(self._run_shutdown_hooks, limit))  # (they may publish)
        if self.asgi is not None:
            steps.append(functools.partial(self._lifespan_shutdown, limit))  # (it may publish)
        steps.append(self.pubsub.close)
        if self.metrics is not None:
            steps.append(self.metrics.stop)
        if self.status is not None:
            steps.append(self.status.stop)
        failure: Exception | None = None
        for step in steps:
            try:
                await step()
            except Exception as exc:
                if failure is not None:
                    logger.exception("another step of the shutdown failed too")
                failure = failure or exc
        if failure is not None:
            raise failure

    def _hook_run(
        self, hooks: Sequence[ServerHook], index: int, kind: str, undone: str
    ) -> Coroutine[Any, Any, None]:
        """The run of ``hooks[index]`` (``kind``: on_startup, on_shutdown), a
        sys.exit() in it said with the hooks after it not run (exit_said())."""
        after = ", ".join(_hook_name(h) for h in hooks[index + 1 :])
        return exit_said(
            hooks[index](self),
            f"{kind} hook {_hook_name(hooks[index])}",
            f"{undone} ({f'{kind} hooks not run: {after}' if after else 'no hook after it'})",
        )

    async def _run_startup_hooks(self) -> None:
        """The Router's on_startup hooks, in order.

        Raises:
            LifespanFailure: one raised (the next ones do not run, nor do the
                on_shutdown hooks).
        """
        assert self.router is not None
        hooks = self.router.startup_hooks
        for index, hook in enumerate(hooks):
            name = _hook_name(hook)
            try:
                # (A sys.exit() there leaves the loop from this task: said.)
                await self._hook_run(hooks, index, "on_startup", "the server does not start")
            except BaseException as exc:
                # (A CancelledError of its own, say: it awaited what other code
                # cancelled. Not the start's cancellation, nor SystemExit.)
                if passes_through(exc):
                    raise passed_on(exc)  # noqa: B904
                raise LifespanFailure(f"on_startup hook {name} raised {exc!r}") from exc
        self._hooks_started = bool(self.router.shutdown_hooks)

    async def _run_shutdown_hooks(self, limit: float) -> None:
        """The Router's on_shutdown hooks, in order, each within ``limit``
        seconds (then cancelled); a failure is logged, and the next run."""
        assert self.router is not None
        self._hooks_started = False
        # Each in a task of its own, so that one that goes on when cancelled
        # past its bound (it caught the CancelledError) does not hold the
        # shutdown for ever: it is left running, as a handler is. All in one
        # copy of the shutdown's context: a close() there is known as the
        # shutdown's, and what a hook sets (a ContextVar) the next one sees,
        # as when they ran in the shutdown's task.
        context = contextvars.copy_context()
        hooks = self.router.shutdown_hooks
        for index, hook in enumerate(hooks):
            name = _hook_name(hook)
            said = self._hook_run(hooks, index, "on_shutdown", "the rest of the shutdown undone")
            running = self.loop.create_task(said, context=context)
            try:
                await asyncio.wait([running], timeout=limit)
            except asyncio.CancelledError:
                await _cancel_and_wait(running, f"on_shutdown hook {name}")
                raise
            if not running.done():
                await _cancel_and_wait(running, f"on_shutdown hook {name}")
                logger.error("on_shutdown hook %s did not end within %s s: cancelled", name, limit)
                self.app_failed(f"on_shutdown hook {name} did not end within {limit} s", None, None)
                continue
            try:
                running.result()
            except BaseException as exc:
                # (A CancelledError of its own too: it awaited what other code cancelled.)
                if only(exc, NOT_FAILURES):
                    raise passed_on(exc)  # noqa: B904
                logger.exception("on_shutdown hook %s failed", name)
                self.app_failed(f"on_shutdown hook {name} failed", exc, None)

    async def _lifespan_shutdown(self, limit: float) -> None:
        """The ASGI application's lifespan shutdown, within ``limit`` seconds;
        its failure is the application's."""
        assert self.asgi is not None
        failure = await self.asgi.shutdown(limit)
        if failure is not None:
            self.app_failed("the ASGI lifespan shutdown failed", failure, None)

    async def _unless_closed(self, step: asyncio.Task[None], what: str) -> None:
        """Wait for ``step`` of the start (``what``: an ASGI lifespan startup, a
        Router's startup hooks), and take its outcome; a close() from outside the
        start meanwhile cancels it, as a stop signal cancels the command's start
        (it may wait for a database that never answers), and raises
        _ClosedInStart: the start stops before it listens."""
        stopped = self._start_stopped
        assert stopped is not None
        try:
            await asyncio.wait([step, stopped], return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            await _cancel_and_wait(step, what)  # (the start is cancelled: its step with it)
            raise
        if not step.done():
            await _cancel_and_wait(step, what)
            raise _ClosedInStart
        await step  # (raises what it raised)

    async def _start_serving(self) -> None:
        """After the broker and the lifespan startup: a Router's startup hooks
        (which may publish), the timers, listening."""
        if self.closing:
            raise _ClosedInStart  # (a close() as the lifespan startup ended)
        if self.router is not None:
            # In a task of its own, named in its context (as the shutdown's):
            # a hook's close(), through wait_for() too, is known to be the start's.
            context = contextvars.copy_context()
            self._starter = start_app_task(self.loop, self._run_startup_hooks(), context)
            try:
                # (Raises LifespanFailure.)
                await self._unless_closed(self._starter, "an on_startup hook")
            finally:
                self._starter = None
            # (What they set, a ContextVar, is the start's, whose context every
            # connection's tasks start from, as when they ran in its task.)
            adopt_context(context)
        if self.closing:
            raise _ClosedInStart  # (a hook called close(), or a close() from elsewhere came)
        if self.metrics is not None:
            self.metrics.start()
        if self.status is not None:
            self.status.start()
        config = self.config
        self.keep_alive_deadlines = Deadlines(
            self.loop, config.timeout_keep_alive, HttpProtocol.on_keep_alive_timeout
        )
        if config.open_timeout is not None:
            self.open_deadlines = Deadlines(
                self.loop, config.open_timeout, HttpProtocol.on_open_timeout
            )
        if config.ping_interval is not None:
            self.ping_deadlines = Deadlines(
                self.loop, config.ping_interval, WebSocketProtocol.on_ping_due
            )
            if config.ping_timeout is not None:
                self.pong_deadlines = Deadlines(
                    self.loop, config.ping_timeout, WebSocketProtocol.on_pong_timeout
                )
        if config.compression_release_after is not None:
            self.compressor_deadlines = Deadlines(
                self.loop, config.compression_release_after, WebSocketProtocol.release_compressor
            )
        if self.listen:
            await self._listen()

    def _close_deadlines(self) -> None:
        """Stop every per-connection timer (after serving, or when it never began)."""
        for deadlines in (
            self.open_deadlines,
            self.keep_alive_deadlines,
            self.ping_deadlines,
            self.pong_deadlines,
            self.compressor_deadlines,
        ):
            if deadlines is not None:
                deadlines.close()

    async def _listen(self) -> None:
        config = self.config
        timeout = config.open_timeout if self._accept_ssl is not None else None
        # asyncio's selector loops run their accept() loop as many times as
        # the backlog they are given, and 3.11's goes on after EMFILE (out of
        # descriptors), each failure one more retry scheduled: with 1,024, a
        # storm that grew and took a core. The sockets made here are given at
        # most asyncio's own 100, then listen with the backlog asked for. (Not
        # one given, which other processes may share, the workers': asyncio's
        # listen() with 100 would shrink their queue a moment.)
        batch = config.backlog
        if isinstance(self.loop, asyncio.selector_events.BaseSelectorEventLoop):
            batch = min(batch, ACCEPT_BATCH)
        own = None  # (a socket made here, closed if listening fails)
        if self.sock is None and self.uds is None and is_every_ipv6_interface(self.host):
            # (IPv4 clients too: asyncio's would set IPV6_V6ONLY.)
            own = every_interface_socket(self.requested_port)
        sock = self.sock or own
        if sock is not None:
            if self.sock is not None:
                batch = config.backlog
            try:
                self._server = await self.loop.create_server(
                    self._make_protocol,
                    sock=sock,
                    backlog=batch,
                    ssl=self._accept_ssl,
                    ssl_handshake_timeout=timeout,
                )
            except BaseException:
                if own is not None:
                    own.close()
                raise
        elif self.uds is not None:
            self._unix_sock = unix_socket(self.uds, config.backlog)
            try:
                self._server = await self.loop.create_unix_server(
                    self._make_protocol,
                    sock=self._unix_sock,
                    backlog=batch,
                    ssl=self._accept_ssl,
                    ssl_handshake_timeout=timeout,
                )
            except BaseException:
                self._unix_sock.close()
                remove_socket_file(self._unix_sock)
                raise
        else:

            async def create(host: Any, port: int) -> asyncio.Server:
                return await self.loop.create_server(
                    self._make_protocol,
                    host,
                    port,
                    backlog=batch,
                    ssl=self._accept_ssl,
                    ssl_handshake_timeout=timeout,
                    reuse_address=True,
                )

            server = await create(self.host, self.requested_port)
            try:
                if None in server.sockets:
                    # An address given twice (or two names of it): uvloop
                    # binds it twice, and the second fails (None among the
                    # sockets; asyncio binds it once). Each address once.
                    hosts = _addresses(server)
                    server.close()
                    await server.wait_closed()
                    server = await create(hosts, self.requested_port)
                # Port 0 on several addresses (host None, a list, a name with
                # IPv4 and IPv6): each gets a port of its own. Bind them all
                # again to the first one's, so that there is one port.
                for _ in range(5):
                    ports = [sock.getsockname()[1] for sock in server.sockets]
                    if self.requested_port != 0 or len(set(ports)) <= 1:
                        break
                    hosts = _addresses(server)
                    server.close()
                    await server.wait_closed()
                    try:
                        server = await create(hosts, ports[0])
                    except OSError as exc:
                        if exc.errno != errno.EADDRINUSE:
                            raise
                        server = await create(hosts, 0)  # (taken meanwhile: again)
            except BaseException:
                server.close()  # (a start that failed leaves nothing open)
                raise
            self._server = server
        if batch != config.backlog:
            for sock in self._server.sockets:
                # (asyncio's sockets wrapped: listen() on a descriptor of the same socket.)
                again = socket.socket(fileno=os.dup(sock.fileno()))
                try:
                    again.listen(config.backlog)
                finally:
                    again.close()  # (the duplicate descriptor only)
        if accepts_one_per_iteration(self.loop):
            await self._watch_again(timeout)
        self._say_unix_peers_untrusted()

    def _say_unix_peers_untrusted(self, where: str | None = None) -> None:
        """proxy_headers or proxy_protocol on a Unix socket whose peers (which
        have no address) forwarded_allow_ips does not trust: what the proxy
        says is never believed (every client is None), which is said at WARNING,
        once. ``where``: how such connections come, when not listened for
        (:meth:`accept_socket`'s)."""
        settings = (
            ("X-Forwarded-* and Forwarded headers (proxy_headers)", self.trusted_proxies),
            ("PROXY protocol headers (proxy_protocol)", self.proxy_protocol_peers),
        )
        said = [what for what, peers in settings if peers is not None and None not in peers]
        if where is None:
            assert self._server is not None
            if not any(sock.family == socket.AF_UNIX for sock in self._server.sockets):
                return
            where = "listening on a Unix socket, whose peers have"
        if said and "proxy header untrusted, unix" not in self._told:
            self._told.add("proxy header untrusted, unix")  # (said here, once)
            logger.warning(
                "%s no address: forwarded_allow_ips"
                " trusts none of them (it has neither 'unix' nor '*'), so the client and scheme"
                " that %s give are never believed",
                where,
                " or ".join(said),
            )

    async def _watch_again(self, timeout: float | None) -> None:
        """Watch each listening socket LIBUV_ACCEPT_WATCHERS times (see there)."""
        assert self._server is not None
        try:
            for sock in self._server.sockets:
                for _ in range(LIBUV_ACCEPT_WATCHERS - 1):
                    duplicate = socket.socket(fileno=os.dup(sock.fileno()))
                    try:
                        watcher = await self.loop.create_server(
                            self._make_protocol,
                            sock=duplicate,
                            backlog=self.config.backlog,
                            ssl=self._accept_ssl,
                            ssl_handshake_timeout=timeout,
                        )
                    except BaseException:
                        _close_duplicate(duplicate, sock)
                        raise
                    self._watchers.append(watcher)
        except BaseException:  # (a start that failed leaves nothing open, no socket file)
            self._close_listeners()
            self._watchers.clear()
            if self._unix_sock is not None:
                remove_socket_file(self._unix_sock)
            raise

    def _make_protocol(self, accepting: bool = True) -> HttpProtocol | TLSStart:
        """A new connection's protocol; a TLS one is in its handshake until register().
        With ``proxy_protocol``, or accepted over asyncio's own loops, a TLS
        one's first is TLSStart (see there).

        Where the loop does the handshake itself (not on asyncio's selector
        loops but in accept_socket(): see _start()), uvloop accepts in a
        callback (no task), and drops the protocol of a handshake that fails;
        asyncio's other loops accept each connection in a task of its own,
        which ends with the handshake (its protocol, if it failed, lingers in
        a reference cycle until the garbage collector finds it: the task, not
        the protocol, tells). ``accepting=False``: accept_socket(), which sees
        the handshake end itself.
        """
        protocol = HttpProtocol(self)
        if (self._accept_ssl if accepting else self._handed_ssl) is not None:
            self._handshaking[protocol] = asyncio.current_task() if accepting else None
            if accepting and self._served_certfile is not None and self.config.open_timeout:
                # (The loop's own timer, started after this one, ends it in
                # silence. Not an ssl= context's: see tls_handshake_failed().)
                self.loop.call_later(
                    self.config.open_timeout, self._handshake_overdue, weakref.ref(protocol)
                )
        elif self.ssl is not None:  # (TLS started here: after the header, with proxy_protocol)
            return TLSStart(self, protocol, self.config.proxy_protocol)
        return protocol

    @property
    def tls_read_buffer(self) -> memoryview:
        """What asyncio's TLS layer reads every connection's socket into, once
        its handshake is done (see :func:`.transports.share_tls_read_buffer`); made at the
        first, the size of the buffer it would give each."""
        if self._tls_read_buffer is None:
            self._tls_read_buffer = memoryview(bytearray(sslproto.SSLProtocol.max_size))
        return self._tls_read_buffer

    def tls_of(self, transport: asyncio.BaseTransport) -> TLSInfo | None:
        """What the TLS of a connection (its ``transport``) is; None if it has none.

        Never raises: what cannot be read is left out (and logged, once).
        """
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is None:
            return None
        try:
            context = ssl_object.context
            suites = self._cipher_suites.get(context)
            if suites is None:
                suites = self._cipher_suites[context] = cipher_suites(context)
            if context not in self._served_certificates:  # (an SNI callback's)
                self._served_certificates[context] = served_certificate(context)
            return connection_tls(ssl_object, self._served_certificates[context], suites)
        except Exception:
            if not self._tls_failed:
                self._tls_failed = True
                logger.exception("reading a connection's TLS details failed (request.tls)")
            return TLSInfo(None, None)

    def tls_handshake_started(self, protocol: HttpProtocol, task: asyncio.Task[Any]) -> None:
        """``task`` (TLSStart's) does the TLS handshake of
        ``protocol``'s connection: it is in its handshake until register()."""
        self._handshaking[protocol] = task

    def _handshake_overdue(self, ref: weakref.ref[HttpProtocol]) -> None:
        """``open_timeout`` is out for the TLS handshake of the connection of
        ``ref``'s protocol: one still under way is failing (asyncio and
        uvloop close it, saying nothing), and is said as the others are."""
        protocol = ref()
        if protocol is None or protocol not in self._handshaking:
            return  # (registered; or, under uvloop, failed otherwise)
        task = self._handshaking[protocol]
        if task is not None and task.done():
            return  # (failed otherwise: said then, or its client left)
        self.tls_handshake_overdue()

    def tls_handshake_overdue(self) -> None:
        """A client's TLS handshake was not done within ``open_timeout``: counted
        and said as a failure :meth:`tls_handshake_failed` is told of is (with
        the context of the settings)."""
        if self._served_certfile is not None:
            self.tls_handshake_timed_out()
            protocol_logger.debug(
                "TLS handshake failed: not done within open_timeout (%g s)",
                self.config.open_timeout,
            )

    def tls_handshake_timed_out(self) -> None:
        """A client's TLS handshake was not done within ``open_timeout``: counted
        as a failure :meth:`tls_handshake_failed` is told of is (with the
        context of the settings: not an ``ssl=`` context's, whose failures are
        not seen)."""
        if self._served_certfile is not None:
            self.counters.tls_handshake_failures += 1

    def _in_tls_handshake(self) -> bool:
        """Whether a connection is in its TLS handshake (see _make_protocol())."""
        return any(task is None or not task.done() for task in self._handshaking.values())

    async def accept_socket(self, sock: socket.socket) -> asyncio.BaseTransport:
        """Serve a connection accepted elsewhere: a connected stream socket.

        E.g. one end of a ``socket.socketpair()``, as :mod:`wsserver.testing`
        does with a server started with ``listen=False``. The connection is
        then served like any accepted one (TLS too, if the server has it).

        Returns the connection's transport.

        Raises:
            RuntimeError: the server is not started, or closed.
        """
        if not self._started:
            raise RuntimeError("start the server before handing it sockets")
        if self.closing:
            raise RuntimeError("the server is closed (or closing): it takes no more sockets")
        timeout = self.config.open_timeout if self._handed_ssl is not None else None
        proxies = self.trusted_proxies is not None or self.proxy_protocol_peers is not None
        if proxies and sock.family == socket.AF_UNIX:
            # (A TestClient's socket pairs: as a Unix socket listened on, said once.)
            self._say_unix_peers_untrusted(
                "connections handed over a Unix socket (a TestClient's socket pairs) have"
            )
        made: list[HttpProtocol | TLSStart] = []

        def make_protocol() -> HttpProtocol | TLSStart:
            made.append(self._make_protocol(accepting=False))
            return made[-1]

        try:
            transport, _ = await self.loop.connect_accepted_socket(
                make_protocol, sock, ssl=self._handed_ssl, ssl_handshake_timeout=timeout
            )
            return transport
        finally:
            for protocol in made:  # (its handshake is over, done or failed)
                if isinstance(protocol, HttpProtocol):  # (TLSStart's goes on)
                    self._handshaking.pop(protocol, None)

    def __await__(self) -> Generator[Any, None, Server]:
        return self.start().__await__()

    async def __aenter__(self) -> Server:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def serve_forever(self) -> None:
        """Serve until :meth:`close` is called, or the task is cancelled, which closes it.

        Called once the server is closing or closed, it returns when the
        shutdown is over (as :meth:`wait_closed` does). A handler that called
        :meth:`close` (an admin route) answers after the shutdown: this returns
        once it has ended too, ``close_timeout`` at most.
        """
        try:
            if not self.closing:
                await self.start()
            if not self._started:
                return  # closed before it started
            await self._closed.wait()
            await self._let_callers_answer()
            closing = self._closing
            if closing is not None and not closing.cancelled() and closing.exception():
                raise closing.exception()  # type: ignore[misc]  # (the shutdown failed)
        except asyncio.CancelledError:
            await self.close()
            raise

    def close(self, timeout: float | None = None, *, code: int = 1001) -> _Call:
        """Shut down gracefully; ``timeout`` overrides ``shutdown_timeout`` (and
        bounds the WebSockets' closing handshakes, else given ``close_timeout``).

        ``code`` is what the WebSockets are closed with: 1001 (going away), or
        1012 (service restart: a worker retiring in a rolling restart), for
        which the handshakes under way are let finish first (within
        ``open_timeout``; their clients then get the 1012 like the others),
        rather than answered 503: the restart fails nobody's connection attempt.
        Called again with another code meanwhile (a stop during the restart),
        it waits for them no more, and the WebSockets not closed yet get that code.

        The shutdown runs in a task of its own: a handler may call this (an
        admin route, say; the server does not wait for the handler that
        calls it), and a caller cancelled or timed out meanwhile leaves it
        going on; every call waits for that one shutdown.

        It begins when called, as asyncio's ``Server.close()`` and the
        websockets library's do: ``server.close()`` then ``await
        server.wait_closed()`` works too (what it returns is a coroutine to
        asyncio, for ``create_task()`` or ``run_coroutine_threadsafe()``; called
        outside the server's event loop, from another thread, it begins when
        run there).

        Called in the start itself (a Router's startup hook), it stops the
        start before the server listens, and returns at once; called from
        elsewhere while a start is under way (a stop signal's handler), it
        cancels the start's ASGI lifespan startup or startup hooks under way,
        and the start stops before listening (one that comes as it binds its
        sockets shuts it down once it listens); called in the shutdown itself
        (a shutdown hook), it returns at once.

        Raises:
            ValueError: ``code`` is not a close code that can be sent, or
                ``timeout`` is no number of seconds (finite, at least 0) nor
                None; before anything is closed.
        """
        if not isinstance(code, int) or isinstance(code, bool) or not is_valid_close_code(code):
            raise ValueError(f"invalid close code {code!r}")
        if timeout is not None and (
            isinstance(timeout, bool)
            or not isinstance(timeout, (int, float))
            or not math.isfinite(timeout)
            or timeout < 0
        ):
            raise ValueError(
                f"close(timeout=) takes seconds (a finite number, at least 0) or None, "
                f"not {timeout!r}"
            )
        code = int(code)  # (an IntEnum's member, say)
        try:
            here: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        if here is None or (self.loop is not None and here is not self.loop):
            # (Another thread's call, for run_coroutine_threadsafe(): all of it
            # there, when run.)
            return _Call(lambda: self._close_when_run(timeout, code))
        begun = self._begin_close(timeout, code, calling_app_task(), asyncio.current_task())
        return _Call(lambda: _shielded(begun))

    async def _close_when_run(self, timeout: float | None, code: int) -> None:
        """close() called outside the server's loop, run in it."""
        await _shielded(
            self._begin_close(timeout, code, calling_app_task(), asyncio.current_task())
        )

    def _begin_close(
        self,
        timeout: float | None,
        code: int,
        app_caller: asyncio.Task[Any] | None,
        current: asyncio.Task[Any] | None,
    ) -> asyncio.Future[None] | None:
        """What close() does at once; what its callers then wait for (None: nothing).
        ``app_caller`` and ``current``: the application's task calling it (see
        calling_app_task()), the task it is called in."""
        if self._closing is not None and self._closing in (app_caller, current):
            return None  # (waiting for the shutdown under way would wait for ever)
        if self._starting.locked():
            if (self._starter is not None and self._starter in (app_caller, current)) or (
                self._undoing is not None and self._undoing in (app_caller, current)
            ):
                # (A startup hook: the start, which waits for it, sees this
                # and stops before listening; or a shutdown hook of a start
                # that stops. Waiting for the start would wait for ever.)
                self.closing = True
                return None
            # A start() under way stops before it listens: its lifespan
            # startup or startup hooks, which may wait on a database that
            # never answers, are cancelled (as a stop signal cancels the
            # command's start); past them, what it opened is closed after it.
            self.closing = True
            if self._start_stopped is not None and not self._start_stopped.done():
                self._start_stopped.set_result(None)
            after = self.loop.create_task(
                self._close_after_start(timeout, code, app_caller, current)
            )
            after.add_done_callback(_retrieved)
            return after
        return self._begin_shutdown(timeout, code, app_caller, current)

    async def _close_after_start(
        self,
        timeout: float | None,
        code: int,
        app_caller: asyncio.Task[Any] | None,
        current: asyncio.Task[Any] | None,
    ) -> None:
        """close() during a start: once the start is over (it listens if it was
        binding its sockets), the shutdown."""
        async with self._starting:
            pass
        await _shielded(self._begin_shutdown(timeout, code, app_caller, current))

    def _begin_shutdown(
        self,
        timeout: float | None,
        code: int,
        app_caller: asyncio.Task[Any] | None,
        current: asyncio.Task[Any] | None,
    ) -> asyncio.Future[None] | None:
        """Begin the shutdown (or join the one under way); the shutdown's task,
        or None if the server never started."""
        if not self._started:
            self.closing = True  # a start() (serve_forever() in a task) to come does nothing
            self._closed.set()
            return None
        # (The handler's own task, if close() runs in one of its children:
        # asyncio.wait_for(server.close(), t), say.)
        if app_caller is not None:
            self._app_close_callers.add(app_caller)
        caller = app_caller or current
        if caller is not None:
            # Not waited for (it waits for the shutdown), nor its connection cut.
            self._close_callers.add(caller)
            changed = self._callers_changed
            if changed is not None and not changed.done():
                changed.set_result(None)
        if self._closing is not None and self.close_code == 1012 and code != 1012:
            # A stop during a restart's shutdown (SIGTERM to a retiring
            # worker): the handshakes under way are waited for no more, and
            # the WebSockets not told yet get this code (see _shut_down()).
            self.close_code = code
        if self._closing is None:
            self.closing = True
            self.close_code = code
            if code != 1012:
                self._stop_taking_connections()  # at once: nothing else runs first
            # (Its task is named in its context: a shutdown hook's close(),
            # through wait_for() too, is known to be part of it.)
            self._closing = start_app_task(self.loop, self._close(timeout, code))
            # A failure is logged by _close() and raised by serve_forever(),
            # even when every caller gave up waiting.
            self._closing.add_done_callback(_retrieved)
        return self._closing

    async def _let_callers_answer(self) -> None:
        """Wait until the handlers that called close() (an admin route) have
        ended, ``close_timeout`` at most, unless one of them waits: the
        shutdown does not wait for them (they wait for it), and they answer
        once it is over. A program that
        ends when serve_forever() returns has asyncio.run() cancel what is
        left: such a handler, whose client got a 500, not its answer."""
        here = (calling_app_task(), asyncio.current_task())
        callers = self._app_close_callers
        if any(task in callers for task in here if task is not None):
            return  # (a caller itself: they would wait for each other)
        answering = [t for t in callers if not t.done()]
        if answering:
            await asyncio.wait(answering, timeout=self.config.close_timeout)

    def _stop_taking_connections(self) -> None:
        """Accept no more connections, and tell every one the server is shutting down
        (but a WebSocket whose handler called close(): an admin command, which
        answers on it once the shutdown is over, and whose end closes it)."""
        self._stop_watching_sockets()
        for protocol in list(self.connections):
            if isinstance(protocol, HttpProtocol) or not self._runs_a_caller(protocol):
                protocol.shutdown()

    def _stop_watching_sockets(self) -> None:
        """Accept nothing more, at once; :meth:`_stop_accepting` closes the sockets.

        asyncio's selector loops accept in a task (3.11-3.13): the listening
        sockets stop being watched now and are closed once those tasks ran.
        Other loops (uvloop) accept in a callback: they are closed now.
        """
        if self._server is None:
            return
        loop = self.loop
        if isinstance(loop, asyncio.selector_events.BaseSelectorEventLoop):
            for sock in self._server.sockets:
                loop.remove_reader(sock.fileno())
        else:
            self._close_listeners()

    def _close_listeners(self) -> None:
        """Close the listening sockets (every watcher's descriptor)."""
        assert self._server is not None
        self._server.close()
        for watcher in self._watchers:
            watcher.close()

    async def _close(self, timeout: float | None, code: int) -> None:
        try:
            await self._shut_down(timeout, code)
        except Exception:
            logger.exception("the shutdown failed")  # (said once, whoever waits)
            raise
        finally:
            self._closed.set()
            self._close_callers_websockets_later()

    def _close_callers_websockets_later(self) -> None:
        """The WebSockets of handlers that called close(), spared the shutdown's
        close code so that their answer goes out: sent it half a
        ``close_timeout`` after the shutdown, if their handler has not ended
        (an admin loop awaiting its next command), so that none outlives its
        server, and its closing handshake ends within serve_forever()'s wait."""
        delay = self.config.close_timeout / 2
        for protocol in list(self._websockets):
            if not protocol.lost and self._runs_a_caller(protocol):
                self.loop.call_later(delay, protocol.shutdown)

    def _runs_a_caller(self, protocol: Any) -> bool:
        """Whether ``protocol``'s handler or application is one of close()'s callers."""
        callers = self._close_callers
        if isinstance(protocol, HttpProtocol):
            return any(t in callers for t in protocol.tasks())
        return getattr(protocol, "handler_task", None) in callers

    async def _shut_down(self, timeout: float | None, code: int) -> None:
        if self._server is not None:
            await self._stop_accepting()  # losing no connection being accepted
        if code == 1012:
            # A restart fails no connection attempt: the handshakes and
            # requests under way are let finish (within one open_timeout),
            # each connection's then its last (or the next, on its way);
            # unless a stop comes meanwhile (close() with another code: see
            # _restart_stopped()), which waits for none of them.
            for protocol in list(self.connections):
                if isinstance(protocol, HttpProtocol):
                    protocol.restart_begun()
            handshakes_due = self.loop.time() + (self.config.open_timeout or 10.0)
            await self._let_handshakes_finish(handshakes_due)
            self.draining = True
            try:
                self._stop_taking_connections()
                await self._let_idle_connections_drain()
            finally:
                self.draining = False
            # A request begun in the drain (its body on its way, a 100
            # Continue) has no task yet: waited for as those before it.
            await self._let_handshakes_finish(handshakes_due)
        loop = self.loop
        grace = self.config.shutdown_timeout if timeout is None else timeout
        deadline = loop.time() + grace
        # Request bodies on their way to Router handlers: their handlers too
        # get the grace (those whose body has not come by then, a 503). (A
        # restart waited for them already, within its open_timeout.)
        bodies_cut = self.close_code != 1012 and await self._let_bodies_come(deadline)
        tasks = {
            p.handler_task
            for p in self._websockets
            if p.handler_task is not None and not p.handler_task.done()
        }
        tasks |= self.app_tasks
        tasks |= {
            p.http_task
            for p in self.connections
            if isinstance(p, HttpProtocol) and p.http_task is not None
        }
        tasks = await self._wait_for_tasks(tasks, deadline)
        self.cut_off = tasks
        if tasks:
            # (uvicorn's "Cancel N running task(s), timeout graceful shutdown
            # exceeded": why the stop took all its grace, and whose work.)
            logger.warning(
                "shutdown: %d handler%s still running %s: cancelled: %s",
                len(tasks),
                "" if len(tasks) == 1 else "s",
                f"after shutdown_timeout ({grace:g} s)"
                if timeout is None
                else "in a quick shutdown"
                if not timeout
                else f"after close()'s timeout ({grace:g} s)",
                _what_tasks(
                    tasks, {p.handler_task for p in self._websockets if p.waits_for_close_answer()}
                ),
            )
        for task in tasks:
            task.cancel()
        if tasks:
            await self._wait_for_tasks(tasks, loop.time() + CANCELLED_GRACE)
            running = {t for t in tasks if not t.done()}
            # (Not one that called close() as it ends, in a finally: clause: it
            # waits for the shutdown.)
            for task in running - self._close_callers:  # (it caught the CancelledError)
                logger.warning(
                    "shutdown: %s went on when cancelled (it caught the CancelledError); "
                    "left running",
                    _what_task(task),
                )
            # Their clients are answered all the same (503), before the
            # connections are cut below: not left with a bare close.
            for protocol in list(self.connections):
                if isinstance(protocol, HttpProtocol):
                    for task in running.intersection(protocol.tasks()):
                        protocol.answer_cut_off(task)
        # Connections answered while their client still sends its body: the
        # client reads the answer once it has sent it (within what is left of
        # the grace, close_timeout at most), rather than a reset. (Not those
        # lingering for requests pipelined past the end: their answers are
        # sent whole below, all they wait for.)
        answered = [
            p
            for p in self.connections
            if isinstance(p, HttpProtocol) and p.request_coming and not p.lost
        ]
        lingering = [p.watch_disconnect() for p in answered]
        wait = min(deadline - loop.time(), self.config.close_timeout)
        # (Answered as the grace ended, a body not in by then, or a handler
        # cut off while its body still came, a stream=True route's or an ASGI
        # app's: their clients read it still, once they have sent it, as long
        # as a closing handshake: a timeout given to close() bounds it.)
        if bodies_cut or (tasks and any(not p.body_ended for p in answered)):
            wait = (
                self.config.close_timeout
                if timeout is None
                else min(timeout, self.config.close_timeout)
            )
        if lingering and wait > 0:
            await asyncio.wait(lingering, timeout=wait)
        # Answers written but not yet sent (a large body, a client reading it
        # at its pace): sent whole, within what is left of the grace.
        due = loop.time() + max(min(deadline - loop.time(), self.config.close_timeout), 0.0)
        sending = [p for p in self.connections if _still_sending(p)]  # (no new ones come)
        while loop.time() < due and sending:
            await asyncio.sleep(0.02)
            sending = [p for p in sending if _still_sending(p)]
        # WebSockets in their closing handshake: each has close_timeout from
        # its close frame (its own timer aborts it then), however short
        # shutdown_timeout was; a timeout given to close() bounds it too.
        closing = [p for p in self._websockets if not p.lost and not self._runs_a_caller(p)]
        if closing:
            wait = self.config.close_timeout if timeout is None else timeout
            due = loop.time() + min(wait, self.config.close_timeout)
            while closing and loop.time() < due:
                await asyncio.sleep(0.02)
                closing = [p for p in closing if not p.lost]
        for protocol in list(self.connections):
            if not protocol.lost and not self._runs_a_caller(protocol):
                protocol.abort()  # (what it held is not counted as sent)
        # Connections still in their TLS handshake: asyncio's loops accept
        # each in a task, which closes it when cancelled (uvloop's end at
        # open_timeout, the handshake's limit).
        handshaking = [t for t in self._handshaking.values() if t is not None and not t.done()]
        for task in handshaking:
            task.cancel()
        if handshaking:
            await asyncio.wait(handshaking, timeout=1.0)
        self._handshaking.clear()  # (a cancelled task's traceback may keep its key alive)
        self.cut_off = set()  # (their frames: a closed Server may be kept)
        if self._server is not None:
            await self._server.wait_closed()
            for watcher in self._watchers:
                await watcher.wait_closed()
        if self._gathering is not None:  # (a count of the connections under way)
            await asyncio.wait([self._gathering])
        if self._unix_sock is not None:
            remove_socket_file(self._unix_sock)
        await self._stop_services(self.services_limit)

    async def _wait_for_tasks(
        self, tasks: set[asyncio.Task[Any]], deadline: float
    ) -> set[asyncio.Task[Any]]:
        """Wait until every one of ``tasks`` has ended, or called close() (it
        stops being waited for: it waits for the shutdown), or until
        ``deadline`` (loop time); those that have not."""
        loop = self.loop
        while True:
            # (One wait for all: not one per task that ends, which would be
            # quadratic in the connections.)
            tasks = {t for t in tasks if not t.done() and t not in self._close_callers}
            if not tasks or loop.time() >= deadline:
                break
            self._callers_changed = changed = loop.create_future()
            every = loop.create_task(asyncio.wait(tasks))
            await asyncio.wait(
                [every, changed], timeout=deadline - loop.time(), return_when="FIRST_COMPLETED"
            )
            changed.cancel()
            every.cancel()
        self._callers_changed = None
        return tasks

    def response_after_upgrade(self, uri: str, status: int) -> None:
        """A WebSocket route's handler returned an HTTP response (a Sanic-style
        decorator's ``json(..., 403)``, say): the ``101`` went before the
        handler ran, so it went nowhere, and the client saw a plain close. Said
        at WARNING the first time for each route (the application's mistake,
        otherwise silent), at DEBUG after that."""
        self._say_first_time(
            f"response after upgrade {uri}",
            "the handler of the WebSocket route %s returned a %d response after the 101:"
            " it was not sent, the upgrade being accepted already (to refuse the upgrade,"
            " return the response from the route's on_connect hook or raise"
            " HandshakeError(status, message) there; once accepted, await ws.close(1008,"
            " reason))",
            printable(uri),
            status,
        )

    def tls_on_plain_port(self, address: tuple[str, int] | None) -> None:
        """A client began a TLS handshake where TLS is off (wss:// or https://
        to a ws:// server): said at WARNING the first time (the client only
        reports a TLS error; the cause is here), at DEBUG after that."""
        self._say_first_time(
            "tls on plain port",
            "%s began a TLS handshake, and this server listens without TLS: it was"
            " answered 400 (is the client meant to use ws:// or http://, or the server"
            " to have ssl_certfile, --ssl-certfile?)",
            peer(address),
        )

    def websocket_over_http10(self, address: tuple[str, int] | None) -> None:
        """A request asked to upgrade to WebSocket over HTTP/1.0, where Upgrade
        is ignored (RFC 9110 7.8): it was taken for a plain HTTP request (a
        Router's WebSocket route answers it 426). Said at WARNING the first
        time (a proxy in front that speaks HTTP/1.0 to this server, nginx's
        default, fails every WebSocket so, the cause said nowhere else), at
        DEBUG after that."""
        self._say_first_time(
            "websocket over http/1.0",
            "%s asked to upgrade to WebSocket over HTTP/1.0, which cannot: it was taken for"
            " a plain HTTP request (is a proxy in front speaking HTTP/1.0 to this server?"
            " nginx does unless told proxy_http_version 1.1)",
            peer(address),
        )

    def websocket_upgrade_dropped(self, address: tuple[str, int] | None) -> None:
        """A WebSocket handshake came to a Router's WebSocket route without its
        ``Upgrade: websocket`` (its ``Sec-WebSocket-Key`` there): answered 426.
        ``Upgrade`` and ``Connection`` are hop-by-hop, and a proxy in front
        not told to pass them drops them, failing every WebSocket so, the
        cause said nowhere else: said at WARNING the first time, at DEBUG
        after that."""
        self._say_first_time(
            "websocket upgrade dropped",
            "%s sent a WebSocket handshake without Upgrade: websocket: it was answered 426"
            " (is a proxy in front dropping the Upgrade and Connection headers, hop-by-hop?"
            " nginx does unless told proxy_set_header Upgrade $http_upgrade and"
            ' Connection "upgrade")',
            peer(address),
        )

    def proxy_header_unasked(
        self, address: tuple[str, int] | None, outcome: str = "it was answered 400"
    ) -> None:
        """A connection began with a PROXY protocol header where ``proxy_protocol``
        is off (a balancer's ``send-proxy``): said at WARNING the first time
        (each of its requests is a 400 for an illegal request line, or with TLS
        its handshake fails, which says nothing of the cause), at DEBUG after
        that. ``address``: None when the TLS layer saw it, which knows no peer."""
        self._say_first_time(
            "proxy header unasked",
            "%s began with a PROXY protocol header, and proxy_protocol is off: %s (is the"
            " balancer meant to send one, HAProxy's send-proxy, an AWS target group's proxy"
            " protocol v2, and the server to have --proxy-protocol?)",
            "a connection" if address is None else peer(address),
            outcome,
        )

    def proxy_header_untrusted(
        self, address: tuple[str, int] | None, source: tuple[str, int]
    ) -> None:
        """A PROXY protocol header naming the client ``source`` came from a peer
        not in ``forwarded_allow_ips``: its address is ignored, the peer taken
        for the client. Said at WARNING the first time (a balancer left out of
        the setting, such as one not on the loopback the default trusts, makes
        every client the balancer, otherwise in silence), at DEBUG after that
        (a Unix socket's peer: at DEBUG, said at start already)."""
        self._say_first_time(
            "proxy header untrusted" if address is not None else "proxy header untrusted, unix",
            "%s sent a PROXY protocol header naming %s, and is not in forwarded_allow_ips:"
            " the address is ignored, the client taken to be the sender (is the balancer"
            " meant to be trusted, its addresses in --forwarded-allow-ips?)",
            peer(address),
            peer(source),
        )

    def _say_first_time(self, mistake: str, message: str, *args: Any) -> None:
        """Log a client's (or its balancer's) ``mistake`` at WARNING the first
        time, its cause being here only, and at DEBUG after that."""
        level = logging.DEBUG if mistake in self._told else logging.WARNING
        self._told.add(mistake)
        logger.log(level, message, *args)

    def believes_proxy_header(self, proxy: tuple[str, int] | None) -> bool:
        """Whether the client a PROXY protocol header from ``proxy`` (the peer
        that sent it; None: a Unix socket's) names is taken (``forwarded_allow_ips``)."""
        peers = self.proxy_protocol_peers
        return peers is not None and (proxy[0] if proxy is not None else None) in peers

    def no_proxy_header(self, address: tuple[str, int] | None, problem: str) -> None:
        """A connection began with what is no PROXY protocol header
        (``proxy_protocol``; ``problem`` says what is wrong): closed unanswered,
        and said at WARNING the first time (a balancer that sends none, or a
        health check or client that bypasses it, would otherwise fail in
        silence), at DEBUG after that (:mod:`wsserver.protocol`'s line, always)."""
        if "no proxy header" in self._told:
            return
        self._told.add("no proxy header")
        logger.warning(
            "%s: %s: closed unanswered, as every connection that does not start with one"
            " will be (is the balancer sending the header, HAProxy's send-proxy, and does"
            " every client, health checks included, come through it?); later ones are"
            " said at DEBUG",
            peer(address),
            problem,
        )

    def app_failed(
        self, problem: str, exc: BaseException | None, transport: asyncio.BaseTransport | None
    ) -> None:
        """An application failed on the connection of ``transport`` (logged by the caller).

        A handler or an ASGI app raised ``exc``, or broke the protocol
        (``problem`` says how; ``exc`` is then None): counted, and told to
        :attr:`app_failure_listeners`. ``transport`` is None for a failure on
        no connection: an on_shutdown hook's, the ASGI lifespan shutdown's.
        """
        self.counters.handler_errors += 1
        for listener in self.app_failure_listeners:
            try:
                listener(problem, exc, transport)
            except Exception:  # (the client still gets its 500 or its 1011)
                logger.exception("app failure listener %r failed", listener)

    def tls_handshake_failed(self, error: ssl_module.SSLError, proxy_header: bool) -> None:
        """A client's TLS handshake failed (see :func:`~.tls.watch_handshakes`):
        counted, and said at DEBUG (a port scan's, a health check's are no news);
        one that began with a PROXY protocol header where ``proxy_protocol`` is
        off as :meth:`proxy_header_unasked` says it."""
        self.counters.tls_handshake_failures += 1
        reason = error.reason or str(error)
        if proxy_header and self.proxy_protocol_peers is None:
            return self.proxy_header_unasked(None, f"its TLS handshake failed ({reason})")
        protocol_logger.debug("TLS handshake failed: %s%s", reason, failure_hint(error, reason))

    def stats(self) -> dict[str, Any]:
        """Every counter of this server, now (see :meth:`ServerStats.snapshot`).

        With a broker, also ``pubsub``: topics with local subscribers, local
        deliveries and skips, and the broker's published, received, dropped
        messages and outages, and whether it is unreachable now (1 or 0).
        """
        snapshot = self.counters.snapshot(self._websockets)
        snapshot["pubsub"] = self._pubsub_stats()
        return snapshot

    def _pubsub_stats(self) -> dict[str, int]:
        broker = self.pubsub.broker.stats
        return {
            "topics": len(self.pubsub.subscribers),
            "delivered": self.pubsub.delivered,
            "skipped": self.pubsub.skipped,
            "published": broker.published,
            "received": broker.received,
            "dropped": broker.dropped,
            "outages": broker.outages,
            "unreachable": broker.unreachable,
        }

    async def recent_stats(self, max_age: float = 0.9) -> dict[str, Any]:
        """:meth:`stats`, or the one taken within the last ``max_age`` seconds (not to be changed).

        For the readers that ask every second (the status page's feeds, the
        figures shared between workers, a Prometheus scrape): however many
        there are, the open connections are added up about once a second, a
        few thousand at a time, letting the loop run between (a walk over
        every one at once would stall every connection of a large server), and
        callers that ask meanwhile share that walk.
        """
        recent = self._recent_stats
        if recent is not None and time.monotonic() - recent[0] <= max_age:
            return recent[2]
        if self._gathering is None:
            self._gathering = asyncio.get_running_loop().create_task(self._gather_stats())
        return await asyncio.shield(self._gathering)

    def stats_taken(self, stats: dict[str, Any]) -> float:
        """When (``time.time()``) ``stats``, given by :meth:`recent_stats`, were
        taken (now, for others)."""
        recent = self._recent_stats
        return recent[1] if recent is not None and recent[2] is stats else time.time()

    async def _gather_stats(self) -> dict[str, Any]:
        try:
            started, started_wall = time.monotonic(), time.time()
            open_now = list(self._websockets)
            snapshot = await self.counters.snapshot_in_steps(open_now, stats_module.STEP)
            snapshot["pubsub"] = self._pubsub_stats()
            self._recent_stats = (started, started_wall, snapshot)
            return snapshot
        finally:
            self._gathering = None

    async def _serve_metrics(self, request: Request) -> Response:
        assert self.metrics is not None
        if not has_token(request, self.config.metrics_token):
            return unauthorized()
        body, content_type = self.metrics.render(await self.recent_stats(0))
        return Response(body, 200, [NOT_STORED], content_type=content_type)

    # ------------------------------------------------------ publish/subscribe

    async def publish(
        self,
        topic: str,
        message: Message,
        *,
        exclude: WebSocket | None = None,
    ) -> int:
        """Send ``message`` to every subscriber of ``topic``, here and in the other processes.

        Local subscribers get it at once (framed once, slow ones skipped, as
        :func:`~wsserver.broadcast` does; ``exclude``, say the sender, does
        not); the broker carries it to the other processes that have
        subscribers, at most once (dropped while the broker is unreachable).
        It never waits for the broker, nor for a slow subscriber; it gives
        the loop a turn once every ``SENDS_PER_TURN`` (256) messages it handed
        on (or subscribers it skipped), as ``ws.send()`` does, so that a burst of publishes holds no
        other client up until its end (and the subscribers' writes, and the
        queue to Redis, are sent on meanwhile).

        ``message`` is sent as :meth:`WebSocket.send` sends it: a str as text,
        bytes (bytearray, memoryview) as binary, a dict or list as JSON text.

        Returns:
            How many local connections got it.

        Raises:
            TypeError: ``message`` is none of those, ``topic`` is not a str,
                or ``exclude`` is not one WebSocket (a list of them would
                exclude none).
            ValueError: ``topic`` is not valid Unicode text (a lone surrogate),
                or longer than ``max_topic_size``; UnicodeEncodeError (one)
                for a str ``message`` that has no UTF-8, as ``ws.send()``
                refuses it, whether the topic has subscribers or not.
        """
        pubsub = self.pubsub
        skipped = pubsub.skipped
        delivered = pubsub.publish(topic, message, exclude)
        # (The subscribers skipped count too: a room all backed up is gone
        # through as one that takes every message.)
        self._published += 1 + delivered + pubsub.skipped - skipped
        if self._published >= SENDS_PER_TURN:
            self._published = 0
            await asyncio.sleep(0)
        return delivered

    async def presence(self, topic: str) -> int:
        """How many connections are subscribed to ``topic``, in every process of the broker.

        Raises:
            TypeError, ValueError: ``topic`` is one no subscription may name
                (not a str, not valid text, over ``max_topic_size``).
        """
        check_topic(topic, self.pubsub.max_topic_size)
        return await self.pubsub.broker.presence_of(topic)

    async def presence_by_topic(self) -> dict[str, int]:
        """Every topic with subscribers in any process, and how many."""
        return await self.pubsub.broker.presence()

    def on_broker_state(self, listener: Callable[[bool], object]) -> Callable[[], None]:
        """Call ``listener(False)`` when the broker becomes unreachable and ``(True)`` when
        it is back (to resync clients that may have missed messages meanwhile);
        ``listener(False)`` at once if it is unreachable now (a startup hook
        adds it after the broker's first attempt). An ``async def`` listener
        is run in a task of its own (cancelled if still running when the
        server stops); what a listener raises is logged.

        Returns:
            A function that takes this listener off again (calling it twice does nothing).
        """
        return self.pubsub.on_broker_state(listener)

    async def _stop_accepting(self) -> None:
        """Close the listening sockets, without losing a connection being accepted.

        asyncio (3.11-3.13, selector loops) accepts in a task: one that runs
        after ``Server.close()`` leaves its socket open and served by nobody.
        So stop watching the sockets first, and let such tasks finish.
        """
        assert self._server is not None
        self._stop_watching_sockets()
        if isinstance(self.loop, asyncio.selector_events.BaseSelectorEventLoop):
            for _ in range(3):
                await asyncio.sleep(0)
        self._close_listeners()

    def request_limit_reached(self) -> None:
        """``limit_max_requests`` requests were received: :attr:`on_request_limit`, or close.

        Closing is as for a restart (1012): the WebSockets' clients reconnect.
        """
        if self.closing:
            return
        logger.info(
            "%d request%s received (limit_max_requests)",
            self.requests,
            "" if self.requests == 1 else "s",
        )
        if self.on_request_limit is not None:
            self.on_request_limit()
            return
        self._limit_task = task = self.loop.create_task(self.close(code=1012))
        # (A failure is logged by the shutdown and raised by serve_forever().)
        task.add_done_callback(lambda done: done.cancelled() or done.exception())

    @property
    def refusing(self) -> bool:
        """Whether new upgrades are answered 503 (shutting down, and not restarting)."""
        return self.closing and self.close_code != 1012

    async def _let_idle_connections_drain(self) -> None:
        """A restart: wait (:data:`RESTART_IDLE_DRAIN`) while kept-alive
        connections are idle (a request may be on its way: it is answered,
        and its connection closed after), then close those still idle."""
        loop = self.loop
        deadline = loop.time() + min(RESTART_IDLE_DRAIN, self.config.timeout_keep_alive)
        # (Those idle now: no connection is accepted any more, and one that
        # is not idle now is not kept for its next request.)
        idle = [p for p in self.connections if isinstance(p, HttpProtocol) and p.idle]
        while idle and loop.time() < deadline and not self._restart_stopped():
            await asyncio.sleep(0.02)
            idle = [p for p in idle if p.idle]
        for protocol in idle:
            protocol.close_transport()

    async def _let_bodies_come(self, deadline: float) -> bool:
        """Wait (until ``deadline``, loop time) until no request body is on
        its way to a Router handler (each handler then starts, and is waited
        for as the others); those still coming then are answered 503. Whether
        any was."""
        coming = [p for p in self.connections if isinstance(p, HttpProtocol) and p.body_coming]
        await self._poll_until(lambda: not any(p.body_coming for p in coming), deadline)
        coming = [p for p in coming if p.body_coming]
        for protocol in coming:
            protocol.body_cut_off()
        return bool(coming)

    async def _let_handshakes_finish(self, deadline: float) -> None:
        """Wait (until ``deadline``, loop time) until no connection is in its TLS
        handshake or in the middle of a request (but one whose handler called
        close(): it waits for this)."""

        def settled() -> bool:
            return self._restart_stopped() or (
                not self._in_tls_handshake()
                and not any(
                    isinstance(p, HttpProtocol) and p.busy and not self._runs_a_caller(p)
                    for p in self.connections
                )
            )

        await self._poll_until(settled, deadline)

    def _restart_stopped(self) -> bool:
        """Whether a restart's shutdown (1012) became a stop (close() called
        again with another code): what the restart waits for is waited for
        no more."""
        return self.close_code != 1012

    async def _poll_until(self, done: Callable[[], bool], deadline: float) -> None:
        """Look every 20 ms until ``done()`` or ``deadline`` (loop time): what
        the shutdown waits for (a handshake, a body) changes with no event
        of its own to wait on."""
        while not done() and self.loop.time() < deadline:
            await asyncio.sleep(0.02)

    async def wait_closed(self) -> None:
        """Wait until :meth:`close` has finished (after a start that failed, too:
        call close()); as :meth:`serve_forever` does, for the handlers that
        called close() to answer too, ``close_timeout`` at most."""
        await self._closed.wait()
        await self._let_callers_answer()

    # ------------------------------------------------------------ inspection

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        """The listening sockets."""
        if self._server is None:
            return ()
        return tuple(self._server.sockets)

    @property
    def port(self) -> int:
        """The port of the first listening socket (useful with port 0)."""
        for sock in self.sockets:
            if sock.family not in (socket.AF_INET, socket.AF_INET6):
                raise RuntimeError("the server listens on a Unix socket: it has no port")
            return int(sock.getsockname()[1])
        raise RuntimeError("the server is not listening")

    @property
    def websockets(self) -> list[WebSocket]:
        """The application's WebSocket connections currently open (not the
        status page's feeds, the server's own: a broadcast to these never
        reaches them)."""
        return [
            p.websocket
            for p in self._websockets
            if p.websocket is not None and p.websocket.open and not p.builtin
        ]

    @property
    def websocket_count(self) -> int:
        """How many of the application's connections are in the WebSocket phase
        (what ``max_connections`` bounds; the status page's feeds are the
        server's own, left out)."""
        return len(self._websockets) - len(self._own_websockets)

    @property
    def own_websocket_count(self) -> int:
        """How many of the server's own endpoint's WebSockets (the status
        page's feeds) are open: ``max_connections`` bounds them apart."""
        return len(self._own_websockets)

    # ---------------------------------------------- called by the protocols

    def register(self, protocol: HttpProtocol) -> None:
        """A connection was accepted (and its TLS handshake done)."""
        # (TLS only: a weak dictionary's pop makes a weakref, and its len() is a call.)
        if self.ssl is not None and self._handshaking:
            self._handshaking.pop(protocol, None)
        self.connections.add(protocol)
        if self.closing:
            protocol.shutdown()

    def websocket_opened(self, protocol: WebSocketProtocol) -> None:
        """A connection was upgraded: its WebSocket protocol replaces its HTTP one."""
        self.connections.add(protocol)
        self._websockets.add(protocol)
        if protocol.builtin:
            self._own_websockets.add(protocol)
        if self.closing:
            protocol.shutdown()  # an ASGI application accepted while the server shut down

    def remove_unix_socket_file(self) -> None:
        """Remove the file of the Unix socket it made (``uds``) now: for a
        process that exits at once, without the end of its shutdown."""
        if self._unix_sock is not None:
            remove_socket_file(self._unix_sock)

    def app_task_started(self, task: asyncio.Task[None]) -> None:
        """An ASGI application's run, or a Router WebSocket handler's, began:
        shutdown waits for it."""
        self.app_tasks.add(task)
        task.add_done_callback(self.app_tasks.discard)

    def unregister(self, protocol: HttpProtocol | WebSocketProtocol) -> None:
        """A connection is gone, or its HTTP phase is over."""
        self.connections.discard(protocol)
        self._websockets.discard(protocol)
        if self._own_websockets:
            self._own_websockets.discard(protocol)


def _still_sending(protocol: HttpProtocol | WebSocketProtocol) -> bool:
    """Whether an HTTP connection has written an answer it has not sent yet.

    Over TLS, what the TLS layer has handed the TCP transport under it (and
    its close_notify) is in no buffer size the TLS transport gives, and out
    of reach under uvloop: an abort would drop it. The kernel's queue tells
    that some is still on its way (the TCP transport holds bytes only while
    that queue is full): bytes the client has not acknowledged yet.
    """
    if not isinstance(protocol, HttpProtocol) or protocol.lost:
        return False
    transport = protocol.transport
    if transport.get_write_buffer_size() > 0:
        return True
    return protocol.server.ssl is not None and bool(unsent_bytes(transport))


def warn_of_hidden_routes(router: Router, builtins: Router) -> None:
    """Log each route of ``router`` that a path of the server's own endpoints
    (``builtins``, served first) keeps requests from."""
    for builtin in builtins.routes:
        uri = builtin.uri.rstrip("/")
        # (Its path, and with a trailing slash unless the endpoint is strict.)
        paths = [path for path in (uri, uri + "/") if builtin.match(path) is not None]
        for route in router.routes:
            path = next((path for path in paths if route.match(path) is not None), None)
            if path is not None:
                logger.warning(
                    "route %r: requests to %r never reach it: the server's own endpoint "
                    "is there (metrics_path, status_path)",
                    route.uri,
                    path,
                )


def _what_task(task: asyncio.Task[Any]) -> str:
    """What a handler's or application's task serves, for a log line: read off
    its coroutine (the protocol that runs it may be gone). Its path is the
    client's: escaped, as every line has it (:func:`~wsserver.logs.printable`)."""
    frame = getattr(task.get_coro(), "cr_frame", None)
    here = frame.f_locals if frame is not None else {}
    owner = here.get("self")
    path = getattr(getattr(owner, "request", None), "path", None)
    if path is None:  # (an ASGI request's HttpCycle: its path as the server gave it)
        path = getattr(owner, "path", None)
    # (An ASGI request's HttpCycle holds its scope; a WebSocket's run() is given it.)
    scope = getattr(owner, "scope", None) or here.get("scope")
    if path is None and isinstance(scope, dict):
        path = scope.get("path")
    if isinstance(path, str):
        if isinstance(owner, WebSocketProtocol):
            return f"the WebSocket handler of {printable(path)}"
        if isinstance(scope, dict) and scope.get("type") == "websocket":
            return f"the WebSocket application of {printable(path)}"
        return f"the application's task for {printable(path)}"
    return "an application task"


def _retrieved(done: asyncio.Future[Any]) -> None:
    """Take a future's exception as seen (its awaiters, if any, get it too)."""
    if not done.cancelled():
        done.exception()


async def _shielded(future: asyncio.Future[None] | None) -> None:
    """Wait for ``future`` (if any), a cancellation of the waiter leaving it going on."""
    if future is not None:
        await asyncio.shield(future)


class _Call(Coroutine[Any, Any, None]):
    """What Server.close() returns: its wait, made when first run (by an
    await, create_task(), run_coroutine_threadsafe(): a coroutine to asyncio),
    so that a close() never awaited (asyncio's habit) leaves no coroutine to
    warn of. close() is typed as returning this class, not Coroutine: mypy's
    unused-coroutine (on by default) flags a Coroutine's call left unawaited,
    which is the idiom here, not a mistake."""

    __slots__ = ("_make", "_coro")
    #: (A task of it shows as <Task ... coro=<Server.close()>>.)
    __name__ = "Server.close"

    def __init__(self, make: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self._make: Callable[[], Coroutine[Any, Any, None]] | None = make
        self._coro: Coroutine[Any, Any, None] | None = None

    def _run(self) -> Coroutine[Any, Any, None]:
        if self._coro is None:
            if self._make is None:
                raise RuntimeError("cannot reuse already awaited coroutine")
            self._coro, self._make = self._make(), None
        return self._coro

    def send(self, value: Any) -> Any:
        return self._run().send(value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        if val is None and tb is None:
            return self._run().throw(typ)
        return self._run().throw(typ, val, tb)  # pragma: no cover (a 3-argument throw())

    def close(self) -> None:
        if self._coro is not None:
            self._coro.close()
        self._make = None

    def __await__(self) -> Generator[Any, None, None]:
        return self._run().__await__()


def _hook_name(hook: object) -> str:
    """A hook's name for a log line: its qualified name (an object's with an
    async ``__call__``: its class's), else its repr."""
    name = getattr(hook, "__qualname__", None)
    if name is None and inspect.iscoroutinefunction(getattr(type(hook), "__call__", None)):  # noqa: B004
        name = type(hook).__qualname__
    return str(name if name is not None else repr(hook))


def _what_tasks(
    tasks: Iterable[asyncio.Task[Any]],
    unanswered: Container[asyncio.Task[Any] | None] = (),
    most: int = 5,
) -> str:
    """What ``tasks`` serve (:func:`_what_task`), alike ones counted once
    ("the WebSocket handler of /feed (120)"), the most frequent first, the
    first ``most`` of them. Those ``unanswered`` (a WebSocket's handler
    waiting to receive, whose client has not answered the close) say so: the
    client holds it (until ``close_timeout``), not the handler's own work."""
    counts = collections.Counter(
        _what_task(task) + (", its client not answering the close" if task in unanswered else "")
        for task in tasks
    )
    named = [
        what if count == 1 else f"{what} ({count})"
        for what, count in sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    ]
    more = len(named) - most
    return ", ".join(named[:most]) + (f" and {more} more" if more > 0 else "")


def serve(
    app: Router | Any,
    host: str | Sequence[str] | None = _DEFAULT_HOST,
    port: int = _DEFAULT_PORT,
    *,
    config: Config | None = None,
    ssl: ssl_module.SSLContext | None = None,
    sock: socket.socket | None = None,
    uds: str | None = None,
    broker: Broker | str | None = None,
    listen: bool = True,
    **settings: Any,
) -> Server:
    """Create a server for ``app``; start it with ``async with`` or ``await``.

    ``app`` is a :class:`~wsserver.Router` or an ASGI 3 application (a
    Starlette or FastAPI app, or any ``async def app(scope, receive, send)``).

    Settings are keyword arguments named like the fields of
    :class:`~wsserver.config.Config` (``max_size=...``, ``ping_interval=...``);
    they win over ``WEBSOCKET_*`` environment variables, which win over the
    defaults. A ``config`` object may be given instead (settings then update it):
    it is taken as it is, without the environment or an ASGI application's
    defaults (:meth:`Config.from_sources` reads those), but checked again (a
    field set since it was made, too).
    An ASGI application gets permessage-deflate by default, as under uvicorn
    (``compression=None`` turns it off).

    Where to listen: ``host`` and ``port`` (an IPv6 address may be in
    brackets, ``"[::1]"``, as URLs write it); or ``sock``, a stream socket
    already bound (e.g. inherited); or ``uds``, the path of a Unix socket (a
    stale one is removed; the server's own file, at its close), or a name in
    Linux's abstract namespace (``"\\0name"``). One of the three: ``sock`` or
    ``uds`` with another, or with a ``host`` or ``port`` given, is refused (as
    on the command line). TLS: an ``ssl`` context, or
    the ``ssl_*`` settings. ``listen=False``:
    nowhere (a ``sock`` or ``uds`` given with it is refused); the server takes
    connected sockets from :meth:`Server.accept_socket` only
    (:mod:`wsserver.testing` runs it so, over socket pairs).

    ``broker`` joins this server's topics to other processes': a
    :class:`~wsserver.broker.Broker`, or a URL (``redis://host:port/db``,
    ``memory``); by default the ``broker`` setting (``--broker``,
    ``WEBSOCKET_BROKER``), else this process only. Given, it is that setting
    (a Broker object's is None): ``WEBSOCKET_BROKER`` is not read.

    Raises:
        ConfigError: a setting is unknown or invalid, or ``host`` or ``port``;
            more than one place to listen is given, or one with ``listen=False``;
            ``sock`` is not bound (listening
            would bind it to every interface, on any port), not a stream socket, or closed;
            an ``ssl`` context that is a client's, has no certificate, or
            chooses HTTP/2 by ALPN, or given with an ``ssl_*`` setting.
        TypeError: ``app`` is neither a Router nor an ASGI application.
    """
    if not isinstance(app, Router | ASGIApplication) and not is_asgi_app(app):
        uri = route_of(app)
        raise TypeError(
            f"serve() needs a wsserver.Router or an ASGI application "
            f"(async def app(scope, receive, send)), not {type(app).__name__}"
            + (f": this is the handler of the route {uri!r} (serve its Router)" if uri else "")
        )
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigError(f"port must be an int from 0 to 65535, not {port!r}")
    # One place to listen, as on the command line (--fd, --uds, or --host and
    # --port): not one silently taken over another.
    places = [name for name, value in (("sock", sock), ("uds", uds)) if value is not None]
    if places:
        places += [
            name
            for name, value, default in (("host", host, _DefaultHost), ("port", port, _DefaultPort))
            if not isinstance(value, default)
        ]
    if len(places) > 1:
        said = " and ".join(f"{name}=" for name in places)
        raise ConfigError(f"{said}: each says where to listen; give one")
    if places and not listen:
        raise ConfigError(f"{places[0]}= with listen=False: it listens nowhere")
    if sock is not None:
        problem = unlistenable(sock)
        if problem is not None:
            raise ConfigError(f"sock {problem}")
    if isinstance(host, str):
        host = _unbracketed(str(host))  # (str(): the default's own class, no more)
    elif host is not None:
        hosts = list(host) if isinstance(host, list | tuple) else [host]
        if not hosts or not all(isinstance(h, str) for h in hosts):
            raise ConfigError(f"host must be a str, a list of str or None, not {host!r}")
        host = [_unbracketed(h) for h in cast(list[str], hosts)]
    port = int(port)
    asgi = not isinstance(app, Router)
    if config is None:
        if broker is not None:
            # The broker setting, given: its variable is not read, as for any
            # setting given (a bad WEBSOCKET_BROKER failed the start).
            settings = {**settings, "broker": None}
        config = Config.from_sources(defaults=ASGI_DEFAULTS if asgi else None, **settings)
    else:
        # (A copy, checked as Config() checks it: its fields may have been set
        # since it was made, config.max_size = ..., which nothing checked.)
        config = config.replace(**settings)
    if not isinstance(broker, Broker):
        given = broker
        broker = config_broker(config, broker)
        if isinstance(given, str):  # (checked by config_broker(), with its own words)
            config = config.replace(broker=given)
    elif config.broker is not None:
        config = config.replace(broker=None)  # (a Broker object's, not a URL's)
    if asgi:
        # (One wrapped already is run with this server's settings, not those
        # it was wrapped with.)
        bare = app.app if isinstance(app, ASGIApplication) else app
        app = ASGIApplication(cast(ASGIApp, bare), config)
    own_ssl = None
    if ssl is None:
        ssl = own_ssl = ssl_context(config)
    else:
        refuse_tls_settings(config, settings)
        refuse_unusable(ssl)
    server = Server(
        app, host, port, config, ssl=ssl, sock=sock, uds=uds, broker=broker, listen=listen
    )
    if own_ssl is not None:
        # (Not an ssl= context: the application's, which another server may share.)
        watch_handshakes(own_ssl, server.tls_handshake_failed)
        server._served_certfile = config.ssl_certfile
    return server


def _set_away(config: Config, prefix: str) -> str:
    """The settings named ``prefix...`` that ``config`` has otherwise than
    their defaults, said for a start-up warning ("a and b are"), or ""."""
    moot = [
        name
        for name, field in Config.__dataclass_fields__.items()
        if name.startswith(prefix) and getattr(config, name) != field.default
    ]
    return f"{' and '.join(moot)} {'is' if len(moot) == 1 else 'are'}" if moot else ""


def config_broker(config: Config, url: str | None = None) -> Broker:
    """The broker ``url`` names (None: the ``broker`` setting's), with ``config``'s
    broker settings: made, not started (a supervisor makes one to see that its
    workers can).

    Raises:
        ConfigError: the URL is not one (or its backend is not installed).
    """
    try:
        return broker_from_url(
            url if url is not None else config.broker,
            presence_ttl=config.broker_presence_ttl,
            timeout=config.broker_timeout,
            queue_bytes=config.broker_queue_bytes,
            presence_queries=config.broker_presence_queries,
            prefix=config.broker_prefix,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _unbracketed(host: str) -> str:
    """``host`` without the brackets around an IPv6 address, as a URL (and the
    command line's ``--host``) writes it: ``[::1]``.

    Raises:
        ConfigError: what is in brackets is no IPv6 address; ``host`` is
            empty or blank (asyncio's every interface, as an unset variable
            gives it: ``--host ''`` is refused too).
    """
    if not host.strip():
        raise ConfigError(f"host {host!r} is no host (None, '0.0.0.0' or '::' for every interface)")
    if not (host.startswith("[") and host.endswith("]")):
        return host
    try:
        ipaddress.IPv6Address(host[1:-1])
    except ValueError:
        raise ConfigError(f"host: expected an IPv6 address in brackets, not {host!r}") from None
    return host[1:-1]


def unlistenable(sock: socket.socket) -> str | None:
    """Why ``sock`` cannot be listened on as it is (``"is not bound to an
    address ..."``), or None if it can.

    Not a stream socket (UDP, say), closed, a connection (listen() fails on
    it with a bare EINVAL), or not bound: listen() would bind it to every
    interface, on a port of the kernel's choosing.
    """
    if sock.fileno() == -1:
        return "is closed"
    if sock.type != socket.SOCK_STREAM:
        return "is not a stream (TCP or Unix stream) socket"
    try:
        sock.getpeername()  # ("" for a Unix peer without a name: a connection all the same)
    except OSError:
        pass  # not connected: listening, or to listen
    else:
        return "is a connection, not a listening socket (as systemd's Accept=yes passes)"
    name = sock.getsockname()
    if not name or (isinstance(name, tuple) and name[1] == 0):
        return "is not bound to an address (bind it before passing it)"
    return None


#: The file of each Unix socket unix_socket() made: its absolute path, and its
#: device and inode then (what remove_socket_file() checks before removing).
_socket_files: weakref.WeakKeyDictionary[socket.socket, tuple[str, int, int]] = (
    weakref.WeakKeyDictionary()
)


def remove_socket_file(sock: socket.socket) -> None:
    """Remove the file of ``sock``, a socket made by :func:`unix_socket`, at the end.

    Only if its path is still that socket's file (the same device and inode):
    not one another server has put there since, nor anything else. Does
    nothing for any other socket.
    """
    made = _socket_files.get(sock)
    if made is None:
        return
    path, device, inode = made
    with contextlib.suppress(OSError):  # (gone already: nothing to do)
        now = os.stat(path)
        if stat.S_ISSOCK(now.st_mode) and (now.st_dev, now.st_ino) == (device, inode):
            os.unlink(path)
    # (Forgotten once removed, not before: a signal handler that runs this
    # again meanwhile, the supervisor's last, then ends the process.)
    _socket_files.pop(sock, None)


def is_every_ipv6_interface(host: object) -> bool:
    """Whether ``host`` is IPv6's unspecified address, ``::``: every interface,
    listened on by :func:`every_interface_socket`."""
    if not isinstance(host, str) or ":" not in host:
        return False
    try:
        return ipaddress.IPv6Address(host).is_unspecified
    except ValueError:
        return False


def every_interface_socket(port: int) -> socket.socket:
    """A socket bound to ``::`` and ``port`` that takes IPv4 clients too
    (``IPV6_V6ONLY`` off; as gunicorn's, Node's and uvicorn's workers' do,
    where asyncio's own would take IPv6 only), not listening yet.

    Raises:
        OSError: it cannot be bound (or the system has no IPv6).
    """
    sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        with contextlib.suppress(OSError):  # (a system that has IPv6 only: IPv6 it is)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(("::", port))
    except BaseException:
        sock.close()
        raise
    return sock


def unix_socket(path: str, backlog: int = 1024) -> socket.socket:
    """A listening Unix socket at ``path``, read-write for owner and group (mode 660).

    Its file is removed by :func:`remove_socket_file` (a server's own at its end).
    A socket file left by a server that is gone is removed first; one a live
    server listens on (even one too busy to accept) is not. It listens as soon
    as it is bound, so that another server probing ``path`` meanwhile sees it alive.

    A ``path`` beginning with a NUL character is a name in Linux's abstract
    namespace, as asyncio's ``create_unix_server()`` takes: no file, and none to remove.

    Raises:
        OSError: ``path`` is in use, or is not a socket.
    """
    abstract = path.startswith("\0")
    if not abstract and os.path.exists(path):
        if not stat.S_ISSOCK(os.stat(path).st_mode):
            raise OSError(errno.EEXIST, f"{path} exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # Not blocking: a live server whose backlog is full would keep a
        # blocking connect() waiting; EAGAIN says it is there all the same.
        probe.setblocking(False)
        try:
            probe.connect(path)
        except ConnectionRefusedError:
            os.unlink(path)  # stale: nobody listens
        except BlockingIOError:
            raise OSError(errno.EADDRINUSE, f"a server is listening on {path}") from None
        else:
            raise OSError(errno.EADDRINUSE, f"a server is listening on {path}")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        # Linux creates the file with the socket's own mode (less the umask):
        # never wider than 660, even for a moment; chmod then gives back what
        # a strict umask took.
        os.fchmod(sock.fileno(), 0o660)
        sock.bind(path)
        if not abstract:
            made = os.stat(path)
            _socket_files[sock] = (os.path.abspath(path), made.st_dev, made.st_ino)
        sock.listen(backlog)
        if not abstract:
            os.chmod(path, 0o660)
    except BaseException:
        sock.close()
        remove_socket_file(sock)
        raise
    return sock


#: Where an ASGI application's defaults differ from a Router's: uvicorn's
#: ``--ws-per-message-deflate`` is on unless turned off.
ASGI_DEFAULTS = {"compression": "deflate"}


async def _cancel_and_wait(task: asyncio.Task[None], what: str) -> None:
    """Cancel ``task`` (``what`` of the start) and wait for its end, its outcome
    retrieved (what the caller raises, the start's cancellation or
    _ClosedInStart, is what stopped it; asyncio would log an exception of its
    as never retrieved). One that goes on when cancelled (it caught the
    CancelledError) is left running after CANCELLED_GRACE, with a warning,
    as a handler is at the shutdown: the start stops all the same."""
    task.cancel()
    await asyncio.wait([task], timeout=CANCELLED_GRACE)
    if not task.done():
        logger.warning(
            "%s went on when cancelled (it caught the CancelledError); left running",
            what,
        )
        return
    if not task.cancelled():
        task.exception()


class _ClosedInStart(Exception):
    """close() was called during the start (by a startup hook, or elsewhere):
    the start stops before listening."""


def _addresses(server: asyncio.Server) -> list[str]:
    """The addresses ``server`` listens on, each once, in order."""
    return list(dict.fromkeys(sock.getsockname()[0] for sock in server.sockets if sock is not None))


def _close_duplicate(duplicate: socket.socket, original: socket.socket) -> None:
    """Close a duplicate of ``original``'s descriptor that a loop failed to watch,
    unless the loop closed it already (libuv does, when it fails after taking
    it): the number may be another file's by now, not ours to close."""
    try:
        ours = os.fstat(duplicate.fileno()).st_ino == os.fstat(original.fileno()).st_ino
    except OSError:
        ours = False
    if ours:
        duplicate.close()
    else:
        duplicate.detach()


def accepts_one_per_iteration(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether ``loop`` accepts one connection per listening watcher and iteration:
    libuv's loops (uvloop's, or a subclass); asyncio's own accept up to the backlog at once."""
    return any(cls.__module__.partition(".")[0] == "uvloop" for cls in type(loop).__mro__)
