"""Unit tests for wsserver.config: defaults, validation, environment, precedence."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

import pytest

from tests.helpers import echo_routes, upgrade_request
from wsserver import Config, ConfigError, Router, serve
from wsserver.broker import MemoryBroker
from wsserver.config import ENV_VARS, Count, Seconds, markdown_table, settings
from wsserver.protocol.deflate import DeflateSettings


def from_env(**env: str) -> Config:
    """A Config built from exactly these environment variables (os.environ is ignored)."""
    return Config.from_sources(env=dict(env))


def assert_config_error(setting: str, **kwargs: Any) -> ConfigError:
    """Config(**kwargs) must raise a ConfigError whose message names ``setting``."""
    with pytest.raises(ConfigError) as info:
        Config(**kwargs)
    assert setting in str(info.value), f"{setting!r} not named in {str(info.value)!r}"
    return info.value


# --------------------------------------------------------------------- defaults


def test_defaults() -> None:
    config = Config()
    assert config.max_size == 1024 * 1024
    assert config.max_queue == 32
    assert config.ping_interval == 20
    assert config.ping_timeout == 20
    assert config.open_timeout == 10
    assert config.close_timeout == 10
    assert config.compression is None  # off unless asked for (the document's default)
    assert config.max_connections is None
    assert config.shutdown_timeout == 10
    assert config.max_header_size == 16384
    assert config.max_headers == 100


def test_from_sources_with_empty_env_gives_defaults() -> None:
    assert Config.from_sources(env={}) == Config()


def test_forwarded_allow_ips_reads_uvicorns_variable_too() -> None:
    # uvicorn's FORWARDED_ALLOW_IPS (a Docker image's, say) when ours is unset.
    assert Config.from_sources(env={"FORWARDED_ALLOW_IPS": "10.0.0.0/8"}).forwarded_allow_ips == (
        "10.0.0.0/8"
    )
    both = {"FORWARDED_ALLOW_IPS": "10.0.0.0/8", "WEBSOCKET_FORWARDED_ALLOW_IPS": "*"}
    assert Config.from_sources(env=both).forwarded_allow_ips == "*"
    with pytest.raises(ConfigError, match=r"forwarded_allow_ips must be .* not 'nope'"):
        Config.from_sources(env={"FORWARDED_ALLOW_IPS": "nope"})
    assert "WEBSOCKET_FORWARDED_ALLOW_IPS` (or `FORWARDED_ALLOW_IPS`)" in markdown_table()


def test_a_setting_given_is_not_read_from_the_environment() -> None:
    # serve(max_size=...) or --max-size wins over WEBSOCKET_MAX_SIZE: a bad
    # value there (a template's leftover) is not read, so it fails nothing.
    env = {"WEBSOCKET_MAX_SIZE": "lots", "WEBSOCKET_PING_INTERVAL": "5"}
    config = Config.from_sources(env=env, max_size=1024)
    assert (config.max_size, config.ping_interval) == (1024, 5)
    with pytest.raises(ConfigError, match="WEBSOCKET_MAX_SIZE='lots'"):
        Config.from_sources(env=env, ping_interval=5)


def test_from_sources_ignores_unrelated_env() -> None:
    assert from_env(PATH="/bin", WEBSOCKET_UNKNOWN="5", websocket_max_size="7") == Config()


def test_config_error_is_a_value_error() -> None:
    assert issubclass(ConfigError, ValueError)


# ------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("max_size", 0),
        ("max_size", -1),
        ("max_size", 1.5),
        ("max_size", "10"),
        ("max_size", True),
        ("max_queue", 0),
        ("max_queue", None),
        ("max_queue", 2.0),
        ("ping_interval", 0),
        ("ping_interval", -1.0),
        ("ping_interval", "20"),
        ("ping_interval", True),
        ("ping_timeout", 0),
        ("ping_timeout", -0.5),
        ("open_timeout", 0),
        ("open_timeout", "10"),
        ("close_timeout", 0),
        ("close_timeout", None),
        ("close_timeout", -1),
        ("shutdown_timeout", -1),
        ("shutdown_timeout", None),
        ("max_header_size", 0),
        ("max_header_size", None),
        ("max_headers", 0),
        ("max_headers", 1.0),
        ("max_connections", 0),
        ("max_connections", -2),
        # Beyond what sizes can be (2**64 overflowed zlib's limit on every
        # compressed message: each one failed the connection with a traceback).
        ("max_size", 2**64),
        ("write_limit", 2**63),
        # uvloop's transports take the write buffer's limits as a C int: above
        # it, every connection failed in connection_made(), its client left
        # waiting, while the server had started without a word.
        ("write_limit", 2**31),
        ("backlog", 0),
        ("write_limit", 0),
        ("write_limit", None),
        ("compression", "gzip"),
        ("compression", "Deflate"),
        ("compression", ""),
        ("compression", False),
        # Near redis-py's pool (100 connections), presence would starve publishing again.
        ("broker_presence_queries", 65),
        ("broker_presence_queries", 0),
    ],
)
def test_invalid_value_raises_config_error_naming_setting(setting: str, value: Any) -> None:
    assert_config_error(setting, **{setting: value})


@pytest.mark.parametrize(
    "origin",
    [
        "not an origin",
        "example.com",  # the scheme forgotten
        "https://example.com/",  # a path, even "/", is never in an Origin header
        "https://example.com/app",
        "https://Example.com",  # browsers send it lowercase
        "HTTPS://example.com",
        "https://example.com:443",  # browsers leave the default port out
        "http://example.com:80",
        "https://example.com:99999",
        "https://example.com:x",
        "https://user@example.com",
        "https://example.com?x=1",
        "https://",
        "",
        "https://*.example.com",  # no wildcards: exact values
        "https://example.com:",
        "https://example.com:08443",
        "https://a.example ",
        "http://[::1",
        "http://[]",
        "https://a[b",
        "http://1.2.3.4]",
        "http://[fe80::1%25eth0]",
        "https://a\\b",
        # Browsers write an IP address one way (the WHATWG URL standard's):
        "http://127.1:8000",  # 127.0.0.1
        "http://0x7f.0.0.1",
        "http://127.0.0.01",
        "http://127.0.0.1.",
        "http://1.2.3.4.5",  # (no URL at all)
        "http://example.42",  # (a host ending in a number is an IPv4 address)
        "http://[0:0:0:0:0:0:0:1]:8080",  # [::1]
        "http://[::ffff:127.0.0.1]",  # [::ffff:7f00:1]
        "https://[2001:db8:0:0:1::1]",  # [2001:db8::1:0:0:1]
        "http://[::0:1]",
    ],
)
def test_an_origin_no_browser_sends_is_refused(origin: str) -> None:
    # Any of these admitted no browser at all: every upgrade got 403.
    error = assert_config_error("origins", origins=[origin])
    assert repr(origin) in str(error)


@pytest.mark.parametrize(
    "origin",
    [
        "https://app.example",
        "http://127.0.0.1:8000",
        "http://[::1]:8080",
        "null",
        "file://",  # pages opened from disk in Chromium-based shells (Electron, WebViews)
        "chrome-extension://abcdefghijklmnop",
        "safari-web-extension://0A1B2C3D-4E5F",  # (not a special scheme: case kept)
        "https://xn--bcher-kva.example",
        "http://10.0.0.1",
        "http://[::ffff:7f00:1]",
        "https://[2001:db8::1:0:0:1]",
        "http://[2001:db8:0:1:1:1:1:1]",  # (a single zero is not compressed)
        "https://app.example.",
        "http://1.example",
        "http://example.1a",  # (not a number: a name)
        "chrome-extension://0x7f.1",  # (not a special scheme: no IP address)
    ],
)
def test_origins_as_browsers_send_them_are_taken(origin: str) -> None:
    assert Config(origins=[origin, None]).origins == [origin, None]


def test_a_list_of_origins_is_kept_as_checked() -> None:
    # The caller's list was kept: appended to afterwards, every handshake took
    # what was never checked (as the headers' list is not: it is copied).
    allowed = ["https://app.example"]
    config = Config(origins=allowed)
    allowed.append("https://evil.example/not-an-origin")
    assert config.origins == ["https://app.example"]


async def test_origins_given_to_serve_as_a_tuple_are_taken_as_a_routes_are() -> None:
    # A route's origins=("https://app.example",) was taken, serve()'s refused
    # ("origins must be a list of strings"), as websockets' serve() takes any sequence.
    server = serve(echo_routes(), "127.0.0.1", 0, origins=("https://app.example", None))
    assert server.config.origins == ["https://app.example", None]
    assert Config().replace(origins=("https://app.example",)).origins == ["https://app.example"]
    # (A lone str is still refused, as on a route: not each of its characters.)
    assert_config_error("origins", origins="https://app.example")


@pytest.mark.parametrize(
    ("origin", "said"),
    [
        ("https://example.com/", "no path"),
        ("HTTPS://example.com", "lowercase"),
        ("https://example.com:443", "default port 443"),
        ("https://*.example.com", "wildcard"),
        ("https://bücher.example", "punycode"),
        ("http://127.1:8000", "four decimal numbers"),
        ("http://[0:0:0:0:0:0:0:1]:8080", "[::1]"),
        ("http://[::ffff:127.0.0.1]", "[::ffff:7f00:1]"),
    ],
)
def test_a_refused_origin_says_why(origin: str, said: str) -> None:
    assert said in str(assert_config_error("origins", origins=[origin]))


def test_an_empty_status_token_is_refused_not_taken_for_none() -> None:
    # WEBSOCKET_STATUS_TOKEN= (a template's unset variable) opened the status
    # page to anybody; 'none' says so on purpose.
    with pytest.raises(ConfigError, match=r"status_token must be a token .*, not ''"):
        from_env(WEBSOCKET_STATUS_TOKEN="")
    assert from_env(WEBSOCKET_STATUS_TOKEN="none").status_token is None


@pytest.mark.parametrize("word", ["null", "off", "false", "NULL", "Off"])
def test_a_token_is_no_word_for_none_but_none(word: str) -> None:
    # A template that renders a missing token as 'null' or 'false' lifted the
    # status page's (and the metrics') token, silently. Taken as it is, it
    # would be a token anyone guesses: refused; only 'none' says none.
    for variable in ("WEBSOCKET_STATUS_TOKEN", "WEBSOCKET_METRICS_TOKEN"):
        with pytest.raises(ConfigError, match=r"must be a token .*'none' says no token"):
            from_env(**{variable: word})
    config = from_env(WEBSOCKET_STATUS_TOKEN="None", WEBSOCKET_METRICS_TOKEN=" none ")
    assert config.status_token is None and config.metrics_token is None
    # A key's password 'off' is that password (it was taken for none); an
    # empty one is none, as before (a review's: it became a ConfigError).
    assert from_env(WEBSOCKET_SSL_KEYFILE_PASSWORD=word).ssl_keyfile_password == word
    assert from_env(WEBSOCKET_SSL_KEYFILE_PASSWORD="").ssl_keyfile_password is None
    # (Limits and switches still take the other words: WEBSOCKET_MAX_SIZE=off.)
    assert from_env(WEBSOCKET_MAX_SIZE="off", WEBSOCKET_COMPRESSION="false").max_size is None


def test_metrics_and_status_pages_need_paths_of_their_own() -> None:
    # Before, the same path for both: a traceback from the router at start-up.
    # (Compared as served: decoded, as requests are routed.)
    for metrics, status in [("/m", "/m"), ("/m/ws", "/m"), ("/m/w%73", "/%6D"), ("/m", "/%6d")]:
        error = assert_config_error("metrics_path", metrics_path=metrics, status_path=status)
        assert "status_path" in str(error)
    assert Config(metrics_path="/m", status_path="/s").status_path == "/s"


@pytest.mark.parametrize("name", ["metrics_path", "status_path"])
@pytest.mark.parametrize("path", ["/m/<x>", "/m/%3Cx%3E", "/m/<x:int>"])
def test_a_served_path_has_no_route_parameters(name: str, path: str) -> None:
    # A '<name>' made the server's own route one with a parameter: serve()
    # failed with "handler cannot be called as _serve_metrics(request, x)", and
    # the status page's handlers took it as theirs.
    error = assert_config_error(name, **{name: path})
    assert "'<'" in str(error)


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("compression_level", 10),
        ("compression_window_bits", 16),
        ("compression_client_window_bits", 7),
        ("compression_client_window_bits", 8),
        ("compression_mem_level", 0),
        ("compression_min_size", -1),
    ],
)
def test_invalid_compression_setting_raises_config_error_naming_setting(
    setting: str, value: Any
) -> None:
    # The message must name the Config setting the user actually passed,
    # not only a field of the internal DeflateSettings.
    assert_config_error(setting, **{setting: value})


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("compression_level", "6"),
        ("compression_window_bits", 12.5),
        ("compression_mem_level", None),
        ("compression_min_size", "0"),
    ],
)
def test_compression_setting_of_wrong_type_raises_config_error(setting: str, value: Any) -> None:
    with pytest.raises(ConfigError):
        Config(**{setting: value})


@pytest.mark.parametrize("setting", ["ping_interval", "ping_timeout", "open_timeout"])
def test_nan_timeout_rejected(setting: str) -> None:
    # NaN compares false with everything, so "> 0" must not let it through.
    assert_config_error(setting, **{setting: float("nan")})


@pytest.mark.parametrize("huge", [10**400, -(10**5000)], ids=["1e400", "-1e5000"])
@pytest.mark.parametrize(
    "setting", [name for name, spec in settings() if isinstance(spec.kind, Seconds | Count)]
)
def test_integers_beyond_what_a_float_holds_rejected(setting: str, huge: int) -> None:
    # An int above ~1e308 is finite, but no float holds it: the finiteness
    # check raised OverflowError, not a ConfigError that names the setting;
    # and past 4300 digits, writing the value in the message raised ValueError.
    error = assert_config_error(setting, **{setting: huge})
    magnitude = "about 10**400" if huge > 0 else "about -10**5000"
    assert str(error).endswith(f", not {magnitude}"), error


@pytest.mark.parametrize(
    "changes",
    [
        {"max_size": None},
        {"max_size": 1},
        {"ping_interval": None, "ping_timeout": None, "open_timeout": None},
        {"ping_interval": 0.01, "close_timeout": 0.5},
        {"compression": None},
        {"max_connections": 1},
        {"shutdown_timeout": 0},
        {"compression_level": -1, "compression_window_bits": 9, "compression_mem_level": 1},
        {"compression_level": 9, "compression_window_bits": 15, "compression_mem_level": 9},
        {"compression_client_window_bits": 9, "compression_min_size": 0},
        {"compression_no_context_takeover": True},
    ],
)
def test_valid_values_accepted(changes: dict[str, Any]) -> None:
    config = Config(**changes)
    for name, value in changes.items():
        assert getattr(config, name) == value


def largest_accepted(setting: str) -> int:
    """The largest integer ``Config`` takes for ``setting`` (below 2**64)."""
    low, high = 1, 2**64  # (accepted, refused)
    while high - low > 1:
        middle = (low + high) // 2
        try:
            Config(**{setting: middle})
        except ConfigError:
            high = middle
        else:
            low = middle
    return low


def test_the_largest_write_limit_taken_serves_on_uvloop() -> None:
    # (Real sockets, on uvloop whatever loop the suite runs: its transports
    # refused a limit past what a C int holds, at each connection.)
    import uvloop

    limit = largest_accepted("write_limit")

    async def main() -> bytes:
        async with serve(echo_routes(), "127.0.0.1", 0, write_limit=limit) as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(upgrade_request("/"))
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            writer.close()
            return head

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert runner.run(main()).startswith(b"HTTP/1.1 101 ")


def test_replace_validates_and_copies() -> None:
    config = Config()
    changed = config.replace(max_queue=4)
    assert changed.max_queue == 4
    assert config.max_queue == 32
    with pytest.raises(ConfigError, match="max_queue"):
        config.replace(max_queue=0)


def test_a_config_s_repr_shows_no_password_nor_token() -> None:
    # The dataclass's repr wrote them out: a handler logging request.server.config,
    # a traceback shown with its locals (an error tracker's), a debugger.
    config = from_env(
        WEBSOCKET_SSL_KEYFILE_PASSWORD="hunter2",
        WEBSOCKET_STATUS_TOKEN="status-secret",
        WEBSOCKET_METRICS_TOKEN="metrics-secret",
        WEBSOCKET_BROKER="redis://app:redis-secret@cache:6379/0",
    )
    for shown in (repr(config), str(config), repr(serve(Router(), config=config).config)):
        for secret in ("hunter2", "status-secret", "metrics-secret", "redis-secret"):
            assert secret not in shown, shown
        assert "ssl_keyfile_password='***'" in shown and "status_token='***'" in shown
        assert "broker='redis://app:***@cache:6379/0'" in shown  # (as errors show it)
        assert "max_size=1048576" in shown and "metrics_token='***'" in shown
    # What is not set still says so, and the rest is the dataclass's repr.
    assert repr(Config()).startswith("Config(max_size=1048576, max_queue=32, ")
    assert "ssl_keyfile_password=None" in repr(Config()) and "status_token=None" in repr(Config())


def test_unknown_setting_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="max_sise"):
        Config.from_sources(env={}, max_sise=10)


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ("ws_max_size", "max_size"),  # uvicorn's names, which the flags take as aliases
        ("ws_ping_interval", "ping_interval"),
        ("timeout_graceful_shutdown", "shutdown_timeout"),
        ("h11_max_incomplete_event_size", "max_header_size"),
        ("max_sise", "max_size"),  # a near miss
        ("ws_per_message_deflate", "compression"),
    ],
)
def test_an_unknown_setting_s_error_says_the_one_meant(given: str, said: str) -> None:
    # serve(app, ws_max_size=...) (uvicorn.run()'s keyword, which the command
    # line takes as --ws-max-size) was "unknown setting 'ws_max_size'", where a
    # WEBSOCKET_WS_MAX_SIZE variable is warned of as WEBSOCKET_MAX_SIZE?: it
    # names the setting now, as serve(), Config.replace() and TestClient say it.
    from wsserver.testing import TestClient

    for refuse in (
        lambda: serve(echo_routes(), "127.0.0.1", 0, **{given: 10}),
        lambda: Config().replace(**{given: 10}),
        lambda: TestClient(echo_routes(), **{given: 10}),
    ):
        with pytest.raises(ConfigError) as refused:
            refuse()
        assert str(refused.value).startswith(f"unknown setting {given!r}: {said}"), refused.value
    with pytest.raises(ConfigError) as refused:
        serve(echo_routes(), "127.0.0.1", 0, frobnicate=1)
    assert str(refused.value) == "unknown setting 'frobnicate'"


# -------------------------------------------------------------- environment


def test_env_var_table() -> None:
    assert ENV_VARS["WEBSOCKET_MAX_SIZE"] == "max_size"
    assert ENV_VARS["WEBSOCKET_MAX_QUEUE"] == "max_queue"
    assert ENV_VARS["WEBSOCKET_PING_INTERVAL"] == "ping_interval"
    assert ENV_VARS["WEBSOCKET_PING_TIMEOUT"] == "ping_timeout"
    assert ENV_VARS["WEBSOCKET_TIMEOUT"] == "open_timeout"
    assert ENV_VARS["WEBSOCKET_CLOSE_TIMEOUT"] == "close_timeout"
    assert ENV_VARS["WEBSOCKET_COMPRESSION"] == "compression"
    fields = {f.name for f in dataclasses.fields(Config)}
    assert set(ENV_VARS.values()) <= fields


@pytest.mark.parametrize(
    ("var", "text", "setting", "expected"),
    [
        ("WEBSOCKET_MAX_SIZE", "4096", "max_size", 4096),
        ("WEBSOCKET_MAX_SIZE", " 10 ", "max_size", 10),
        ("WEBSOCKET_MAX_QUEUE", "8", "max_queue", 8),
        ("WEBSOCKET_PING_INTERVAL", "2.5", "ping_interval", 2.5),
        ("WEBSOCKET_PING_INTERVAL", "3", "ping_interval", 3.0),
        ("WEBSOCKET_PING_TIMEOUT", "0.5", "ping_timeout", 0.5),
        ("WEBSOCKET_TIMEOUT", "7", "open_timeout", 7.0),
        ("WEBSOCKET_CLOSE_TIMEOUT", "1.5", "close_timeout", 1.5),
        ("WEBSOCKET_COMPRESSION", "deflate", "compression", "deflate"),
        ("WEBSOCKET_COMPRESSION", "DEFLATE", "compression", "deflate"),
        ("WEBSOCKET_MAX_CONNECTIONS", "3", "max_connections", 3),
        ("WEBSOCKET_SHUTDOWN_TIMEOUT", "0", "shutdown_timeout", 0.0),
    ],
)
def test_env_var_parsed(var: str, text: str, setting: str, expected: Any) -> None:
    config = from_env(**{var: text})
    value = getattr(config, setting)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    ("var", "setting"),
    [
        ("WEBSOCKET_MAX_SIZE", "max_size"),
        ("WEBSOCKET_PING_INTERVAL", "ping_interval"),
        ("WEBSOCKET_PING_TIMEOUT", "ping_timeout"),
        ("WEBSOCKET_TIMEOUT", "open_timeout"),
        ("WEBSOCKET_MAX_CONNECTIONS", "max_connections"),
        ("WEBSOCKET_COMPRESSION", "compression"),
    ],
)
@pytest.mark.parametrize("word", ["none", "None", "NULL", "off"])
def test_env_none_words_give_none_where_nullable(var: str, setting: str, word: str) -> None:
    assert getattr(from_env(**{var: word}), setting) is None


@pytest.mark.parametrize(
    "var",
    [
        "WEBSOCKET_MAX_SIZE",
        "WEBSOCKET_MAX_BODY_SIZE",
        "WEBSOCKET_PING_INTERVAL",
        "WEBSOCKET_PING_TIMEOUT",
        "WEBSOCKET_TIMEOUT",
        "WEBSOCKET_MAX_CONNECTIONS",
        "WEBSOCKET_LIMIT_CONCURRENCY",
    ],
)
@pytest.mark.parametrize("empty", ["", "  "])
def test_an_empty_limit_is_refused_not_taken_for_none(var: str, empty: str) -> None:
    # WEBSOCKET_MAX_SIZE= (a template's unset variable, say) lifted the limit
    # altogether: no limit must be asked for by name.
    with pytest.raises(ConfigError, match=f"{var}=.*: expected .* or 'none'"):
        from_env(**{var: empty})


@pytest.mark.parametrize("var", ["WEBSOCKET_COMPRESSION", "WEBSOCKET_SSL_CERTFILE"])
def test_an_empty_word_or_path_still_means_off(var: str) -> None:
    assert getattr(from_env(**{var: ""}), ENV_VARS[var]) is None


@pytest.mark.parametrize("word", ["0", "false"])
def test_env_compression_off_words(word: str) -> None:
    assert from_env(WEBSOCKET_COMPRESSION=word).compression is None


@pytest.mark.parametrize(
    ("var", "text"),
    [
        ("WEBSOCKET_MAX_SIZE", "big"),
        ("WEBSOCKET_MAX_SIZE", "1.5"),
        ("WEBSOCKET_MAX_SIZE", "1e6"),
        ("WEBSOCKET_MAX_SIZE", "0"),  # a number, but not a positive one
        ("WEBSOCKET_MAX_QUEUE", "none"),  # max_queue is not nullable
        ("WEBSOCKET_MAX_QUEUE", "lots"),
        ("WEBSOCKET_PING_INTERVAL", "soon"),
        ("WEBSOCKET_PING_INTERVAL", "0"),
        ("WEBSOCKET_PING_TIMEOUT", "1,5"),
        ("WEBSOCKET_TIMEOUT", "ten"),
        ("WEBSOCKET_CLOSE_TIMEOUT", "none"),  # close_timeout is not nullable
        ("WEBSOCKET_CLOSE_TIMEOUT", "-1"),
        ("WEBSOCKET_COMPRESSION", "gzip"),
        ("WEBSOCKET_MAX_CONNECTIONS", "many"),
        ("WEBSOCKET_SHUTDOWN_TIMEOUT", "x"),
    ],
)
def test_env_bad_value_raises_config_error(var: str, text: str) -> None:
    # The variable is named, also for a value read but out of range (it said
    # "open_timeout must be > 0, not 0.0" for WEBSOCKET_TIMEOUT=0).
    with pytest.raises(ConfigError, match=f"^{var}"):
        from_env(**{var: text})


def test_env_bad_number_message_names_variable() -> None:
    with pytest.raises(ConfigError, match="WEBSOCKET_MAX_QUEUE"):
        from_env(WEBSOCKET_MAX_QUEUE="lots")


def test_env_value_out_of_range_names_the_variable_it_came_from() -> None:
    with pytest.raises(ConfigError, match=r"^WEBSOCKET_TIMEOUT: open_timeout must be > 0"):
        from_env(WEBSOCKET_TIMEOUT="0")
    # (uvicorn's variable, read when ours is unset: which of the two said it.)
    with pytest.raises(ConfigError, match=r"^FORWARDED_ALLOW_IPS: forwarded_allow_ips must be"):
        from_env(FORWARDED_ALLOW_IPS="10.0.0.0/99")
    # A mistyped broker URL's password is still not shown.
    with pytest.raises(ConfigError, match=r"^WEBSOCKET_BROKER: broker must be") as info:
        from_env(WEBSOCKET_BROKER="http://user:hunter2@redis:6379")
    assert "hunter2" not in str(info.value)


def test_env_several_vars_at_once() -> None:
    config = from_env(
        WEBSOCKET_MAX_SIZE="100",
        WEBSOCKET_MAX_QUEUE="2",
        WEBSOCKET_PING_INTERVAL="none",
        WEBSOCKET_PING_TIMEOUT="3",
        WEBSOCKET_TIMEOUT="4",
        WEBSOCKET_CLOSE_TIMEOUT="5",
        WEBSOCKET_COMPRESSION="none",
    )
    assert (
        config.max_size,
        config.max_queue,
        config.ping_interval,
        config.ping_timeout,
        config.open_timeout,
        config.close_timeout,
        config.compression,
    ) == (100, 2, None, 3.0, 4.0, 5.0, None)


# -------------------------------------------------------------------- precedence


def test_overrides_win_over_env() -> None:
    env = {"WEBSOCKET_MAX_SIZE": "100", "WEBSOCKET_PING_INTERVAL": "5"}
    config = Config.from_sources(env=env, max_size=200, ping_interval=None)
    assert config.max_size == 200
    assert config.ping_interval is None


def test_override_none_wins_over_env_value() -> None:
    config = Config.from_sources(env={"WEBSOCKET_COMPRESSION": "deflate"}, compression=None)
    assert config.compression is None


def test_env_wins_over_defaults_and_others_keep_defaults() -> None:
    config = Config.from_sources(env={"WEBSOCKET_MAX_QUEUE": "3"}, max_size=50)
    assert config.max_queue == 3
    assert config.max_size == 50
    assert config.ping_interval == Config().ping_interval


def test_override_makes_an_invalid_env_value_irrelevant() -> None:
    # An env value that is a number but invalid is replaced by a valid override,
    # and so is one that is no number at all (the variable is not read, as
    # click does for a flag given with its envvar): it was a ConfigError.
    assert Config.from_sources(env={"WEBSOCKET_MAX_SIZE": "0"}, max_size=5).max_size == 5
    assert Config.from_sources(env={"WEBSOCKET_MAX_SIZE": "abc"}, max_size=5).max_size == 5


async def test_a_broker_given_to_serve_is_not_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # serve(broker=...) is the broker setting given, as --broker is: a bad
    # WEBSOCKET_BROKER (a template's leftover) failed the start, and a good
    # one was the config's broker while another served.
    monkeypatch.setenv("WEBSOCKET_BROKER", "reddis://app:pw@cache")
    async with serve(echo_routes(), "127.0.0.1", 0, broker="memory") as server:
        assert server.config.broker == "memory"
        reader, writer = await asyncio.open_connection(*server.sockets[0].getsockname()[:2])
        writer.write(upgrade_request("/"))
        assert (await reader.readline()).startswith(b"HTTP/1.1 101 ")
        writer.close()
    monkeypatch.setenv("WEBSOCKET_BROKER", "redis://cache:6379/0")
    broker = MemoryBroker()
    async with serve(echo_routes(), "127.0.0.1", 0, broker=broker) as server:
        assert server.pubsub.broker is broker
        assert server.config.broker is None  # (not the variable's: a Broker given)
    async with serve(echo_routes(), "127.0.0.1", 0, config=Config(), broker="memory") as server:
        assert server.config.broker == "memory"


@pytest.mark.parametrize(
    ("setting", "value"),
    [("max_size", "1000"), ("max_size", -1), ("ping_interval", 0), ("headers", [("Date", "x")])],
)
async def test_a_config_changed_after_it_was_made_is_checked_by_serve(
    setting: str, value: Any
) -> None:
    # A Config is a dataclass whose fields may be set (config.max_size =
    # int(os.environ["MAX"]) - 1): serve(config=...) took one set to what
    # Config() refuses, and every connection failed at run time (max_size
    # "1000": a TypeError at each message, the client's connection dropped
    # without a close frame). serve() checks it as Config() does, with a
    # keyword beside it or not, and the TestClient's too.
    from wsserver.testing import TestClient

    config = Config()
    setattr(config, setting, value)
    for given in ({}, {"max_queue": 8}):
        with pytest.raises(ConfigError) as refused:
            serve(echo_routes(), "127.0.0.1", 0, config=config, **given)
        assert str(refused.value).startswith(f"{setting} must be "), refused.value
    with pytest.raises(ConfigError):
        TestClient(echo_routes(), config=config)
    # A valid change is taken, checked as made (a list of headers kept as a tuple).
    config = Config()
    config.max_size = 5
    config.headers = [("X-Frame-Options", "DENY")]
    async with serve(echo_routes(), "127.0.0.1", 0, config=config) as server:
        assert server.config.max_size == 5
        assert server.config.headers == (("X-Frame-Options", "DENY"),)
        reader, writer = await asyncio.open_connection(*server.sockets[0].getsockname()[:2])
        writer.write(upgrade_request("/"))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 101 ") and b"X-Frame-Options: DENY" in head
        writer.write(
            b"\x81\x86abcd" + bytes(c ^ k for c, k in zip(b"sixsix", b"abcdab", strict=True))
        )
        frame = await asyncio.wait_for(reader.readexactly(4), 10)  # a close: 1009, too big
        assert frame[0] == 0x88 and int.from_bytes(frame[2:4], "big") == 1009
        writer.close()


async def test_an_asgi_application_already_wrapped_is_run_with_the_server_s_settings() -> None:
    # wsserver.asgi.ASGIApplication(app, config) (how the server runs an ASGI
    # app) given to serve() kept the settings of the Config it was made with:
    # serve()'s own root_path, lifespan and max_body_size were ignored for it
    # (the scope's root_path '', the lifespan run though 'off', a chunked body
    # of any size taken); they are the server's now, as for the bare app.
    import httpx

    from wsserver.asgi import ASGIApplication

    seen: list[Any] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope["type"])
        if scope["type"] == "lifespan":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": scope["root_path"].encode()})

    wrapped = ASGIApplication(app, Config())
    settings = {"root_path": "/api", "lifespan": "off", "max_body_size": 4}
    async with serve(wrapped, "127.0.0.1", 0, **settings) as server:
        url = f"http://127.0.0.1:{server.port}/api/x"

        async def chunked() -> Any:
            yield b"12345678"  # (no Content-Length: only the app's reading counts it)

        async with httpx.AsyncClient(timeout=10) as client:
            answer = await client.get(url)
            assert (answer.status_code, answer.text) == (200, "/api")
            assert (await client.post(url, content=chunked())).status_code == 413
    assert "lifespan" not in seen


@pytest.mark.parametrize("setting", ["ssl_certfile", "ssl_keyfile", "ssl_ca_certs", "ssl_ciphers"])
@pytest.mark.parametrize("blank", [" ", "\t", "  \n"])
async def test_a_blank_tls_file_given_to_serve_is_refused_as_the_setting(
    setting: str, blank: str
) -> None:
    # serve(app, ssl_certfile=" ") (os.environ.get("CERT", " ")) was taken as
    # a file named " ", refused as "TLS: ssl_certfile  : No such file or
    # directory", the blank out of sight; a blank ssl_ca_certs or ssl_ciphers
    # was taken and said "set but ssl_certfile is not".
    with pytest.raises(ConfigError) as refused:
        serve(echo_routes(), "127.0.0.1", 0, **{setting: blank})
    assert str(refused.value).startswith(f"{setting} must be ") and repr(blank) in str(
        refused.value
    ), refused.value
    # (A password's blanks are its own.)
    assert Config(ssl_keyfile_password=blank).ssl_keyfile_password == blank


def test_a_presence_ttl_too_short_is_refused_by_the_setting_and_its_variable() -> None:
    # The help says "at least 0.5", yet Config took 0.1: only a Redis broker
    # refused it, at serve(), as "presence_ttl: ..." naming no variable.
    assert_config_error("broker_presence_ttl", broker_presence_ttl=0.1)
    with pytest.raises(ConfigError) as refused:
        from_env(WEBSOCKET_BROKER_PRESENCE_TTL="0.1")
    assert str(refused.value) == (
        "WEBSOCKET_BROKER_PRESENCE_TTL: broker_presence_ttl must be at least 0.5 seconds, not 0.1"
    )
    assert Config(broker_presence_ttl=0.5).broker_presence_ttl == 0.5


def test_invalid_override_raises_even_with_valid_env() -> None:
    with pytest.raises(ConfigError, match="max_queue"):
        Config.from_sources(env={"WEBSOCKET_MAX_QUEUE": "4"}, max_queue=-1)


def test_from_sources_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBSOCKET_MAX_QUEUE", "5")
    monkeypatch.setenv("WEBSOCKET_TIMEOUT", "none")
    config = Config.from_sources()
    assert config.max_queue == 5
    assert config.open_timeout is None
    assert Config.from_sources(max_queue=6).max_queue == 6
    # An explicit env mapping replaces os.environ entirely.
    assert Config.from_sources(env={}).max_queue == 32


# --------------------------------------------------------------- deflate settings


def test_deflate_settings_defaults() -> None:
    assert Config().deflate_settings() == DeflateSettings(
        server_max_window_bits=12,
        client_max_window_bits=12,
        mem_level=5,
        level=1,
        min_size=32,
        server_no_context_takeover=False,
        releasable=True,  # compression_release_after: 1 s
    )


def test_deflate_settings_mapping() -> None:
    config = Config(
        compression_level=3,
        compression_window_bits=10,
        compression_client_window_bits=9,
        compression_mem_level=7,
        compression_min_size=0,
        compression_no_context_takeover=True,
    )
    settings = config.deflate_settings()
    assert settings == DeflateSettings(
        server_max_window_bits=10,
        client_max_window_bits=9,
        mem_level=7,
        level=3,
        min_size=0,
        server_no_context_takeover=True,
        releasable=True,
    )


# ------------------------------------------------- one declaration per setting


def test_readme_table_is_made_from_the_declarations() -> None:
    from pathlib import Path

    from wsserver.config import markdown_table

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    assert markdown_table() in readme, (
        "README's configuration table is out of date: replace it with the output of "
        'python -c "from wsserver.config import markdown_table; print(markdown_table())"'
    )


def test_every_declared_flag_and_variable_reaches_its_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Each declaration drives its flag and its variable: setting them makes the value.
    from wsserver.__main__ import build_parser, config_from_args
    from wsserver.config import Choice, Flag, settings

    samples = {
        "Count": "7",
        "Seconds": "3.5",
        "Origins": "https://a.example",
        "Text": "/api",
        "IntRange": "2",
        "HeaderList": "X-Frame-Options: DENY",
    }
    parser = build_parser()
    for name, spec in settings():
        kind = type(spec.kind).__name__
        default = getattr(Config(), name)
        if spec.flag is None and spec.env is None:
            continue
        if isinstance(spec.kind, Choice):
            sample = next(c for c in spec.kind.choices if c != default)
        elif isinstance(spec.kind, Flag):
            sample = "false" if default else "true"
        elif name == "forwarded_allow_ips":
            sample = "10.0.0.0/8, ::1"
        elif name == "broker":
            sample = "redis://127.0.0.1:6379/0"
        elif name.endswith("window_bits"):
            sample = "10"
        else:
            sample = samples[kind]
        for flag in (spec.flag, *spec.aliases) if spec.flag is not None else ():
            if isinstance(spec.kind, Flag):
                # --x / --no-x, without a value
                words = [flag if not default else "--no-" + flag[2:]]
            else:
                words = [flag, sample]
            args = parser.parse_args(["x:y", *words])
            value = getattr(config_from_args(args), name)
            expected = spec.kind.parse(sample)
            if spec.kind.repeatable:
                assert list(value) == [expected], (name, flag)
            else:
                assert value == expected, (name, flag)
            assert value != default, name
        if spec.env is not None:
            value = getattr(Config.from_sources(env={spec.env: sample}), name)
            assert value == spec.kind.parse(sample), name
            assert value != default, name
    assert "--max-size" in parser.format_help()
    assert "--ws-max-size" in parser.format_help()


def test_help_gives_each_settings_default_and_variable() -> None:
    # What --help says of a setting's flag: its default (unless its help says
    # how the default goes) and the variable that sets it too, as the
    # command line's own flags do.
    import re

    from wsserver.__main__ import build_parser
    from wsserver.config import settings

    parser = build_parser()
    helps = {}
    for action in parser._actions:
        for option in action.option_strings:
            helps[option] = " ".join((action.help or "").split())
    assert "(default 1048576) [WEBSOCKET_MAX_SIZE]" in helps["--max-size"]
    assert "(default 20) [WEBSOCKET_PING_INTERVAL]" in helps["--ping-interval"]
    assert '(default "auto") [WEBSOCKET_COMPRESSION_LIBRARY]' in helps["--compression-library"]
    assert (
        "(default false) [WEBSOCKET_COMPRESSION_NO_CONTEXT_TAKEOVER]"
        in helps["--compression-no-context-takeover"]
    )
    assert "(default none)" in helps["--max-connections"]
    # compression's default depends on the kind of app: its help says which.
    assert "(default" not in helps["--compression"]
    for name, spec in settings():
        if spec.flag is None:
            continue
        text = helps[spec.flag]
        default = Config.__dataclass_fields__[name].default
        assert re.search(r"\(default [^)]+\)", text) or "default" in spec.help, name
        if default not in (None, (), "", True, False) and "default" not in spec.help:
            whole = isinstance(default, float) and default.is_integer()
            shown = str(int(default) if whole else default)
            assert shown in text, (name, text)
        if spec.env is not None:
            variables = " or ".join((spec.env, *spec.env_aliases))
            assert text.endswith(f"[{variables}]"), (name, text)
    assert helps["--forwarded-allow-ips"].endswith(
        "[WEBSOCKET_FORWARDED_ALLOW_IPS or FORWARDED_ALLOW_IPS]"
    )
    rendered = parser.format_help()
    assert "[WEBSOCKET_MAX_QUEUE]" in rendered


def test_help_gives_the_default_of_every_command_line_flag_too() -> None:
    # README: "--help gives each flag's default"; the flags that are no
    # setting too (--loop's asyncio, where uvicorn's is auto; --log-format's
    # text), but for uvicorn's --http and --ws, which change nothing.
    import argparse

    from wsserver.__main__ import build_parser

    parser = build_parser()
    for action in parser._actions:
        if not action.option_strings or action.option_strings[0] in ("--http", "--ws"):
            continue
        if action.default in (None, False, [], (), argparse.SUPPRESS):
            continue
        text = " ".join((action.help or "").split())
        assert "default" in text, (action.option_strings, action.default, text)
    helps = {a.option_strings[0]: a.help or "" for a in parser._actions if a.option_strings}
    assert "(default asyncio" in " ".join(helps["--loop"].split())
    assert "(default text)" in " ".join(helps["--log-format"].split())


def test_flags_are_not_taken_by_abbreviation(capsys: pytest.CaptureFixture[str]) -> None:
    # An abbreviation that works today breaks when a flag that shares it is added.
    from wsserver.__main__ import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["x:y", "--max-que", "3"])
    assert "unrecognized arguments: --max-que" in capsys.readouterr().err


def test_unreadable_flag_names_the_flag_and_what_it_takes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from wsserver.__main__ import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["x:y", "--max-size", "abc"])
    err = capsys.readouterr().err
    assert "--max-size" in err and "positive integer" in err


@pytest.mark.parametrize("empty", ["", " "])
def test_compression_s_flag_given_empty_is_refused_not_taken_for_none(
    empty: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # --compression "$COMPRESSION" with the variable unset turned an ASGI
    # application's permessage-deflate (on by default) off without a word,
    # where a TLS file's or the broker's flag given empty is refused (4cfb80b):
    # 'none' says none. (An empty WEBSOCKET_COMPRESSION is still off.)
    from wsserver.__main__ import build_parser, config_from_args

    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["x:y", f"--compression={empty}"])
    err = capsys.readouterr().err
    assert f"--compression: expected 'deflate' or 'none', not {empty!r}" in err, err
    for word, said in (("none", None), ("off", None), ("0", None), ("deflate", "deflate")):
        args = parser.parse_args(["x:y", "--compression", word])
        assert config_from_args(args, asgi=True).compression == said
    assert from_env(WEBSOCKET_COMPRESSION=empty).compression is None


def test_a_root_path_given_to_a_router_is_warned_of(caplog: pytest.LogCaptureFixture) -> None:
    # It is an ASGI application's (the scope's root_path): a Router took it
    # without a word, and its url_for() went on without the prefix.
    serve(Router(), "127.0.0.1", 0, root_path="/api")
    said = [r.getMessage() for r in caplog.records if r.name == "wsserver.server"]
    assert any("root_path '/api' is given to ASGI applications" in m for m in said), said
    caplog.clear()
    serve(Router(), "127.0.0.1", 0)
    assert not [r for r in caplog.records if "root_path" in r.getMessage()]


async def test_compression_settings_while_compression_is_off_are_warned_of(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # --compression-level 9 (or WEBSOCKET_COMPRESSION_WINDOW_BITS) given to a
    # Router, whose compression is off by default, or to an ASGI app with
    # compression=None, changed nothing without a word, where a
    # limit_max_requests_jitter without limit_max_requests, a metrics_token
    # without metrics_path, ssl_* without ssl_certfile are said.
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            await receive()

    caplog.set_level(logging.WARNING, logger="wsserver.server")
    for server in (
        serve(echo_routes(), "127.0.0.1", 0, compression_level=9, compression_window_bits=10),
        serve(
            app, "127.0.0.1", 0, compression=None, compression_level=9, compression_window_bits=10
        ),
    ):
        reader, writer = await asyncio.open_connection(
            *(await server.start()).sockets[0].getsockname()[:2]
        )
        writer.write(upgrade_request("/", [("Sec-WebSocket-Extensions", "permessage-deflate")]))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert b"permessage-deflate" not in head  # (off, as the warning says)
        writer.close()
        await server.close()
    said = [r.getMessage() for r in caplog.records]
    assert (
        said
        == [
            "compression_level and compression_window_bits are set but compression is off:"
            " nothing is compressed (compression 'deflate', --compression deflate, turns it on)"
        ]
        * 2
    ), said
    caplog.clear()
    # Compression on (a Router's asked for, an ASGI app's default), or nothing set: no word.
    serve(echo_routes(), "127.0.0.1", 0, compression="deflate", compression_level=9)
    serve(app, "127.0.0.1", 0, compression_level=9)
    serve(echo_routes(), "127.0.0.1", 0)
    assert not caplog.records


def test_redis_broker_settings_without_a_redis_broker_are_warned_of(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # WEBSOCKET_BROKER_PREFIX (or broker_timeout=...) with no broker, or
    # 'memory', changed nothing without a word: they are the Redis broker's.
    caplog.set_level(logging.WARNING, logger="wsserver.server")
    serve(echo_routes(), "127.0.0.1", 0, broker_prefix="app:", broker_timeout=2)
    serve(echo_routes(), "127.0.0.1", 0, broker="memory", broker_prefix="app:", broker_timeout=2)
    said = [r.getMessage() for r in caplog.records]
    assert (
        said
        == [
            "broker_prefix and broker_timeout are set but the broker is this process's"
            " (memory): they are a Redis broker's (broker redis://..., --broker)"
        ]
        * 2
    ), said
    caplog.clear()
    pytest.importorskip("redis")
    serve(echo_routes(), "127.0.0.1", 0, broker="redis://127.0.0.1:1/0", broker_prefix="app:")
    serve(echo_routes(), "127.0.0.1", 0, broker="memory")
    assert not caplog.records


def test_max_form_parts_given_to_an_asgi_application_is_warned_of(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # It bounds a Router's request.form and request.files: an ASGI application
    # parses its own bodies (Starlette's request.form(max_fields=...)), and
    # --max-form-parts 10 given to one changed nothing without a word, as
    # root_path given to a Router is said.
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        pass

    caplog.set_level(logging.WARNING, logger="wsserver.server")
    serve(app, "127.0.0.1", 0, max_form_parts=10)
    said = [r.getMessage() for r in caplog.records]
    assert said == [
        "max_form_parts 10 bounds a Router's request.form and request.files: an ASGI"
        " application parses its own (Starlette's request.form(max_fields=...))"
    ], said
    caplog.clear()
    serve(app, "127.0.0.1", 0)
    serve(Router(), "127.0.0.1", 0, max_form_parts=10)
    assert not caplog.records


def test_lifespan_off_given_to_a_router_with_hooks_is_warned_of(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # uvicorn's --lifespan off runs no startup nor shutdown (Starlette's and
    # FastAPI's on_startup handlers included); a Router's hooks, which the
    # setting does not reach, ran all the same without a word.
    routes = Router()

    @routes.on_startup
    async def open_pool(server: Any) -> None: ...

    serve(routes, "127.0.0.1", 0, lifespan="off")
    said = [r.getMessage() for r in caplog.records if r.name == "wsserver.server"]
    assert any(
        "lifespan 'off'" in m and "on_startup and on_shutdown hooks run all the same" in m
        for m in said
    ), said
    caplog.clear()
    serve(routes, "127.0.0.1", 0)
    serve(routes, "127.0.0.1", 0, lifespan="on")
    serve(Router(), "127.0.0.1", 0, lifespan="off")  # (no hook: nothing differs)
    assert not [r for r in caplog.records if "lifespan" in r.getMessage()]


@pytest.mark.parametrize("setting", ["metrics_path", "status_path"])
def test_a_served_path_s_error_says_every_rule(setting: str) -> None:
    # (From an audit.) "/" was refused as "expected a path starting with '/'".
    error = assert_config_error(setting, **{setting: "/metrics/"})
    assert "not ending with one" in str(error)


def test_every_flag_s_help_gives_its_default() -> None:
    # (From an audit.) A help text that said "defaults" of something else
    # (--ssl-ciphers: "OpenSSL's defaults") was taken to give its own.
    from wsserver.config import flag_help, settings

    for name, spec in settings():
        if spec.flag is not None:
            text = flag_help(name, spec)
            assert "(default " in text or "by default" in text, (name, text)


@pytest.mark.parametrize("token", ["s3cret\n", " s3cret", "s3cret\t", "s3\x00cret", "s3cret\r\n"])
def test_a_token_no_authorization_header_can_carry_is_refused(token: str) -> None:
    # serve(metrics_token=Path("token").read_text()) kept the file's last
    # newline: every scrape with Prometheus's Bearer token (which trims its
    # credentials_file, and a header cannot carry a line break) was a 401,
    # and the server started without a word. The error does not write it out.
    for name in ("metrics_token", "status_token"):
        error = str(assert_config_error(name, **{name: token}))
        assert "Authorization" in error and "s3" not in error, error
    assert Config(metrics_token="s3 cret", status_token="s3crét").metrics_token == "s3 cret"
