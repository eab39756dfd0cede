"""Start the third-party localstripe server on loopback only, without its disk dump.

``localstripe`` (CLI) binds every interface (``::``) and pickles its store to
``/tmp/localstripe.pickle`` after each write, shared by every instance on the machine.
Tests run it through this launcher instead: same application object, bound to
127.0.0.1, store kept in memory, so parallel test runs never share or leak state.
"""

from __future__ import annotations

import argparse

from aiohttp import web
from localstripe.resources import store
from localstripe.server import app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    store.dump_to_disk = lambda: None  # type: ignore[method-assign]
    store.clear()
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
