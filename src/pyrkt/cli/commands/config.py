"""`pyrkt config [--pretty-print]`: the configuration merged from the system, local and user
config dirs, in rkt's shape: ``{"stage0": [entry, ...]}``.

As rkt, each auth domain and each docker registry is an entry of its own (the merge is per
domain and per registry), followed by one ``paths`` and one ``stage1`` entry with the values the
files set ("" where none does). pyrkt adds its own ``store`` kind as a last entry. Unlike rkt,
which prints passwords and tokens as they are, secrets are masked: a user name shows which
credentials apply, the secret itself is never printed.
"""

from __future__ import annotations

from pyrkt.cli.flags import Flag
from pyrkt.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from pyrkt.cli.main import Context
    from pyrkt.config import Config, PathsConfig, Stage1Config
    from pyrkt.fetch.auth import AuthConfig
    from pyrkt.store.limits import ImportLimits

USAGE = "pyrkt config [--pretty-print=false]"
FLAGS = [Flag("pretty-print", "bool", default=True, help="indent the JSON output")]
MASK = "******"  # in place of a password or token


def run(ctx: Context, args: list[str]) -> int:
    values, rest = ctx.parse(FLAGS, args)
    if rest:
        raise UsageError(f"config takes no arguments (got {rest[0]!r})")
    ctx.stdout.write(render(read(ctx.config), pretty=values["pretty_print"]) + "\n")
    return 0


def read(config: Config) -> dict[str, Any]:
    """The merged configuration of ``config``'s dirs as ``render`` prints it."""
    from pyrkt.config import read_paths, read_stage1
    from pyrkt.fetch.auth import read_auth_d
    from pyrkt.store.limits import read_import_limits

    names = config.dirs.names()
    return document(read_auth_d(names), read_paths(config.dirs), read_stage1(config.dirs),
                    read_import_limits(names))


def document(auth: AuthConfig, paths: PathsConfig, stage1: Stage1Config, limits: ImportLimits) -> dict[str, Any]:
    """rkt's ``{"stage0": [...]}``: auth entries by domain, dockerAuth entries by registry
    (each sorted, with its secret masked), then paths, stage1 and pyrkt's store."""
    stage0: list[dict[str, Any]] = []
    for domain in sorted(auth.domains):
        a = auth.domains[domain]
        creds = {"user": a.user, "password": MASK} if a.type == "basic" else {"token": MASK}
        stage0.append({"rktVersion": "v1", "rktKind": "auth", "domains": [domain], "type": a.type,
                       "credentials": creds})
    for registry in sorted(auth.registries):
        c = auth.registries[registry]
        stage0.append({"rktVersion": "v1", "rktKind": "dockerAuth", "registries": [registry],
                       "credentials": {"user": c.user, "password": MASK}})
    stage0.append({"rktVersion": "v1", "rktKind": "paths", "data": paths.data,
                   "stage1-images": paths.stage1_images})
    stage0.append({"rktVersion": "v1", "rktKind": "stage1", "name": stage1.name, "version": stage1.version,
                   "location": stage1.location})
    stage0.append({"rktVersion": "v1", "rktKind": "store", "maxImportBytes": limits.max_import_bytes,
                   "minFreeBytes": limits.min_free_bytes})
    return {"stage0": stage0}


def render(doc: dict[str, Any], *, pretty: bool) -> str:
    """As rkt prints it: indented with tabs, or compact without spaces."""
    import json

    if pretty:
        return json.dumps(doc, indent="\t", ensure_ascii=False)
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
