"""`run --private-users` and `--no-overlay` on the real kernel: the pod in its own user namespace
(rkt's random 65536-aligned range), its image shown as root's through idmapped layers and left
untouched in the store, what its apps write owned on the host by the shifted ids, root inside
unable to do what host root can; enter, logs, stop and gc on such pods; copies instead of
overlays, with and without the namespace."""

from __future__ import annotations

import os
import stat
import subprocess
import time
from pathlib import Path

import pytest
from tests.integration.pods import Cli, make_image, mounts_under, pids_of_pod

ALL = "--insecure-options=capabilities,seccomp"  # every capability: only the namespace holds it back


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> tuple[Cli, str, Path]:
    base = tmp_path_factory.mktemp("userns")
    cli = Cli(base / "data")
    r = cli("fetch", make_image(base / "busybox", cmd=("sh", "-c", "echo hello")))
    assert r.code == 0, r
    yield cli, r.out.strip().splitlines()[-1], base
    cli.collect_all()
    assert mounts_under(base) == []


def run(cli: Cli, image: str, script: str, *flags: str, uuid_file: Path | None = None) -> tuple[str, str]:
    """Run ``script`` in a --private-users pod; its output and the pod's id range."""
    save = uuid_file or cli.data_dir.parent / "last.uuid"
    r = cli("run", "--net=none", f"--uuid-file-save={save}", *flags, image, "--exec=/bin/sh", "--", "-c", script)
    assert r.code == 0, r
    pod = cli.pod_dir(save.read_text().strip())
    rng = (pod / "private-users-prepared").read_text() if (pod / "private-users-prepared").exists() else ""
    return r.out, rng


def layer_state(base: Path) -> dict[str, tuple[int, int, int]]:
    """Owner and mode of every file of every unpacked layer in the store."""
    out = {}
    for top, dirs, files in os.walk(base / "data"):
        if "/layers/" not in top + "/":
            continue
        for name in dirs + files:
            st = os.lstat(os.path.join(top, name))
            out[os.path.join(top, name)] = (st.st_uid, st.st_gid, st.st_mode)
    assert out, "no layer files found"
    return out


def test_the_app_sees_its_shifted_map_and_the_image_owned_by_root_which_stays_untouched(env: tuple[Cli, str, Path]) -> None:
    cli, image, base = env
    before = layer_state(base)
    out, rng = run(cli, image, "cat /proc/self/uid_map /proc/self/gid_map; id -u; stat -c '%u:%g %a' /bin/busybox /etc; "
                               "echo more >> /etc/passwd; chmod 700 /bin; echo written", "--private-users")
    shift, count = (int(x) for x in rng.split(":"))
    assert shift % 65536 == 0 and shift >= 65536 and count == 65536
    lines = out.splitlines()
    assert lines[0].split() == ["0", str(shift), "65536"] and lines[1].split() == ["0", str(shift), "65536"]
    assert lines[2:5] == ["0", "0:0 755", "0:0 755"] and lines[-1] == "written"
    assert layer_state(base) == before  # copied up, never written through


def test_what_the_app_writes_is_owned_on_the_host_by_the_shifted_ids(env: tuple[Cli, str, Path]) -> None:
    cli, image, base = env
    save = base / "write.uuid"
    _, rng = run(cli, image, "echo a > /root-file; echo b > /tmp/user-file; chown 1000:1000 /tmp/user-file; "
                             "mkdir /tmp/d", "--private-users", uuid_file=save)
    shift = int(rng.split(":")[0])
    upper = cli.pod_dir(save.read_text().strip()) / "overlay" / "busybox" / "upper"
    st = os.stat(upper / "root-file")
    assert (st.st_uid, st.st_gid) == (shift, shift)
    st = os.stat(upper / "tmp" / "user-file")
    assert (st.st_uid, st.st_gid) == (shift + 1000, shift + 1000)
    assert os.stat(upper / "tmp" / "d").st_uid == shift


def test_volumes_host_ones_keep_host_owners_and_empty_ones_are_the_pods(env: tuple[Cli, str, Path]) -> None:
    """A host volume is bound as the host has it: what the pod's root writes there is owned on
    the host by the shifted uid, and a host-root file shows as nobody's. An empty volume is the
    pod's own, bound through its id map as the layers are: root's inside (its mode as asked),
    and what the pod writes there is stored as the pod sees it (uid 0 of the pod dir's, which
    no escaped process of the pod, an unprivileged host id, owns)."""
    cli, image, base = env
    host = base / "host-volume"
    host.mkdir()
    host.chmod(0o777)  # the pod's root is an unprivileged host id: only "others" bits let it write
    (host / "from-host").write_text("h\n")
    save = base / "volumes.uuid"
    out, rng = run(cli, image, "echo w > /h/written; chown 1000:1000 /h/written 2>&1 || echo chown-refused; "
                               "stat -c '%u' /h/from-host; stat -c '%u:%g %a' /e; echo x > /e/in-empty; id -u",
                   "--private-users", f"--volume=h,kind=host,source={host}", "--volume=e,kind=empty,mode=0750",
                   "--mount=volume=h,target=/h", "--mount=volume=e,target=/e", uuid_file=save)
    shift = int(rng.split(":")[0])
    assert (host / "written").exists(), out
    st = os.stat(host / "written")
    assert (st.st_uid, st.st_gid) == (shift + 1000, shift + 1000), out  # written and chowned inside: shifted here
    lines = out.split()
    assert lines[-4:] == ["65534", "0:0", "750", "0"], out  # host root's file: the overflow uid inside
    empty = cli.pod_dir(save.read_text().strip()) / "sharedVolumes" / "e"
    assert (empty / "in-empty").stat().st_uid == 0 and os.stat(empty).st_uid == 0


def test_two_pods_get_different_ranges(env: tuple[Cli, str, Path]) -> None:
    cli, image, _ = env
    assert run(cli, image, "true", "--private-users")[1] != run(cli, image, "true", "--private-users")[1]


def test_root_with_every_capability_still_cannot_do_what_host_root_can(env: tuple[Cli, str, Path]) -> None:
    """mknod, mount, creating in a dir host root owns (/dev): all work for root without a user
    namespace, none with one; and from the host, the app's processes are the shifted uid."""
    cli, image, _ = env
    script = ("mknod /tmp/n c 1 3 2>/dev/null; echo mknod=$?; mkdir -p /tmp/m; mount -t tmpfs x /tmp/m 2>/dev/null; "
              "echo mount=$?; touch /dev/x 2>/dev/null; echo dev=$?; grep '^Uid:' /proc/self/status")
    plain, _ = run(cli, image, script, ALL)
    assert plain.splitlines()[:3] == ["mknod=0", "mount=0", "dev=0"]
    shifted, rng = run(cli, image, script, ALL, "--private-users")
    assert [line.split("=")[1] != "0" for line in shifted.splitlines()[:3]] == [True, True, True], shifted
    # /proc/self/status shows ids as the reader's namespace sees them: 0 inside
    assert shifted.splitlines()[3].split()[1:] == ["0", "0", "0", "0"]


def test_a_detached_pod_can_be_entered_logged_stopped_and_collected(env: tuple[Cli, str, Path]) -> None:
    cli, image, base = env
    r = cli("run", "--detach", "--net=none", "--private-users", image, "--exec=/bin/sh", "--", "-c",
            "echo started; exec sleep 600")
    assert r.code == 0, r
    uuid = r.out.strip()
    pod = cli.pod_dir(uuid)
    shift = int((pod / "private-users-prepared").read_text().split(":")[0])
    apps: list[int] = []
    deadline = time.monotonic() + 10
    while not apps and time.monotonic() < deadline:  # the shell has started; its exec of sleep follows
        apps = [p for p in pids_of_pod(uuid) if Path(f"/proc/{p}/cmdline").read_bytes() == b"sleep\x00600\x00"]
        time.sleep(0.02)
    assert apps and all(os.stat(f"/proc/{p}").st_uid == shift for p in apps)  # the host sees the shifted uid
    e = cli("enter", uuid, "/bin/sh", "-c", "cat /proc/self/uid_map; id -u; echo x > /tmp/entered")
    assert e.code == 0, e
    assert e.out.split()[:4] == ["0", str(shift), "65536", "0"]
    assert os.stat(pod / "overlay" / "busybox" / "upper" / "tmp" / "entered").st_uid == shift
    assert cli("logs", uuid).out == "started\n"
    s = cli("stop", uuid)
    assert s.code == 0, s
    cli.wait_exited(uuid)
    g = cli("gc", "--grace-period=0s")
    assert g.code == 0 and not pod.exists(), g
    assert not [m for m in mounts_under(base) if uuid in m]


def test_no_overlay_gives_a_copy_with_and_without_private_users(env: tuple[Cli, str, Path]) -> None:
    cli, image, base = env
    script = "grep -c ' / / .* - overlay ' /proc/self/mountinfo; cat /proc/self/uid_map; stat -c %u /bin/busybox; echo x > /tmp/f"
    for flags in (("--no-overlay",), ("--no-overlay", "--private-users")):
        save = base / "noovl.uuid"
        out, rng = run(cli, image, script, *flags, uuid_file=save)
        lines = out.splitlines()
        assert lines[0] == "0"  # the root is no overlay
        pod = cli.pod_dir(save.read_text().strip())
        assert not (pod / "overlay").exists()
        root = pod / "stage1/rootfs/opt/stage2/busybox/rootfs"
        shift = int(rng.split(":")[0]) if rng else 0
        assert lines[1].split()[:2] == ["0", str(shift)] and lines[2] == "0"
        assert os.stat(root / "tmp" / "f").st_uid == shift
        assert os.stat(root / "bin" / "busybox").st_uid == shift  # the copy itself is owned by the range
        assert stat.S_IMODE(os.stat(root / "tmp").st_mode) == 0o1777


def test_prepare_keeps_the_range_and_run_prepared_uses_it(env: tuple[Cli, str, Path]) -> None:
    cli, image, _ = env
    r = cli("prepare", "--quiet", "--private-users", image, "--exec=/bin/cat", "--", "/proc/self/uid_map")
    assert r.code == 0, r
    uuid = r.out.strip()
    rng = (cli.pod_dir(uuid) / "private-users-prepared").read_text()
    shift, count = rng.split(":")
    p = cli("run-prepared", "--net=none", uuid)
    assert p.code == 0, p
    assert p.out.split() == ["0", shift, count]


def test_the_fly_flavor_refuses_private_users_and_leaves_nothing(env: tuple[Cli, str, Path]) -> None:
    cli, image, _ = env

    def pods(state: str) -> list[str]:  # none yet when this test runs first
        where = cli.data_dir / "pods" / state
        return sorted(os.listdir(where)) if where.exists() else []

    before = pods("run")
    r = cli("run", "--stage1-name=fly", "--private-users", image)
    assert r.code == 254
    assert r.err.strip().splitlines() == ["pyrkt: --private-users cannot be used with the fly flavor: "
                                          "its app shares the host's namespaces"]
    assert pods("run") == before
    assert not pods("prepare")


def test_no_overlay_works_with_the_fly_flavor(env: tuple[Cli, str, Path]) -> None:
    cli, image, _ = env
    r = cli("run", "--stage1-name=fly", "--no-overlay", image, "--exec=/bin/sh", "--", "-c",
            "grep -c ' / / .* - overlay ' /proc/self/mountinfo; echo ok")
    assert r.code == 0, r
    assert r.out.splitlines()[-1] == "ok"


def test_an_app_root_in_the_namespace_can_bind_a_low_port_of_its_own_network(env: tuple[Cli, str, Path]) -> None:
    cli, image, _ = env
    out, _ = run(cli, image, "nc -l -p 80 & sleep 0.3; netstat -ltn | grep -c ':80 '; kill %1", "--private-users")
    assert out.split()[0] == "1"


def test_where_the_kernel_cannot_idmap_the_data_dir_the_pod_gets_a_chowned_copy_and_says_so(
        env: tuple[Cli, str, Path]) -> None:
    """ramfs cannot be idmapped: the fallback of rkt's kind, a copy of the image in the range."""
    _, _, base = env
    ramfs = base / "ramfs"
    ramfs.mkdir()
    subprocess.run(["mount", "-t", "ramfs", "-o", "mode=0755", "pyrkt-test-ramfs", str(ramfs)], check=True)
    try:
        cli = Cli(ramfs / "data")
        r = cli("fetch", make_image(base / "busybox-ramfs", cmd=("true",)))
        assert r.code == 0, r
        image = r.out.strip().splitlines()[-1]
        save = base / "ramfs.uuid"
        r = cli("run", "--net=none", "--private-users", f"--uuid-file-save={save}", image, "--exec=/bin/sh", "--",
                "-c", "cat /proc/self/uid_map; stat -c %u /bin/busybox /etc/hostname; echo x > /tmp/f")
        assert r.code == 0, r
        assert "the kernel cannot idmap the image layers (filesystem ramfs): each app gets a copy" in r.err
        assert "the kernel cannot idmap the pod's files (filesystem ramfs): they are chowned" in r.err
        pod = cli.pod_dir(save.read_text().strip())
        shift = int((pod / "private-users-prepared").read_text().split(":")[0])
        assert r.out.split() == ["0", str(shift), "65536", "0", "0"]
        [app] = (pod / "stage1/rootfs/opt/stage2").iterdir()
        root = app / "rootfs"
        assert not (pod / "overlay").exists()
        assert os.stat(root / "tmp" / "f").st_uid == shift == os.stat(root / "bin" / "busybox").st_uid
        cli.collect_all()
    finally:
        subprocess.run(["umount", str(ramfs)], check=True)


def test_the_apps_of_a_pod_share_its_one_user_namespace(env: tuple[Cli, str, Path]) -> None:
    cli, image, _ = env
    r = cli("run", "--net=none", "--private-users", image, "--name=a", "--exec=/bin/sh", "--", "-c",
            "echo a $(readlink /proc/self/ns/user) $(cat /proc/self/uid_map)", "---",
            image, "--name=b", "--exec=/bin/sh", "--", "-c", "echo b $(readlink /proc/self/ns/user) $(cat /proc/self/uid_map)")
    assert r.code == 0, r
    lines = sorted(r.out.splitlines())
    assert [ln.split()[0] for ln in lines] == ["a", "b"]
    assert lines[0].split()[1:] == lines[1].split()[1:]
    assert lines[0].split()[1] != os.readlink("/proc/self/ns/user")


def test_a_dir_made_for_a_mount_where_the_image_has_none_belongs_to_the_pods_root(env: tuple[Cli, str, Path]) -> None:
    cli, _, base = env
    r = cli("fetch", make_image(base / "no-etc", cmd=("true",), extra_layers=[{"etc": None}]))
    assert r.code == 0, r
    out, _ = run(cli, r.out.strip().splitlines()[-1], "stat -c '%u:%g' /etc; touch /etc/made && echo made",
                 "--private-users")
    assert out.split() == ["0:0", "made"]


def bind_into_app(app_pid: int, host_file: Path, target: str) -> None:
    """Bind a host file over ``target`` in a running app's root, from the host (as systemd's
    machinectl bind does: a detached copy of it moved into the app's mount namespace)."""
    from pyrkt.kernel import mount, namespaces

    tree = mount.clone_tree(str(host_file))
    pid = os.fork()
    if pid == 0:
        try:
            ns = os.open(f"/proc/{app_pid}/ns/mnt", os.O_RDONLY)
            namespaces.setns(ns, namespaces.CLONE_NEWNS)
            mount.move_tree(tree, target)
            os._exit(0)
        except BaseException:
            os._exit(1)
    os.close(tree)
    assert os.waitpid(pid, 0)[1] == 0


@pytest.mark.parametrize("private", [False, True])
def test_a_host_root_only_file_bound_in_is_read_by_root_only_without_a_user_namespace(
        env: tuple[Cli, str, Path], private: bool) -> None:
    cli, image, base = env
    secret = base / f"secret-{private}"
    secret.write_text("host secret\n")
    secret.chmod(0o600)
    flags = ["--private-users"] if private else []
    r = cli("run", "--detach", "--net=none", *flags, image, "--exec=/bin/sh", "--", "-c",
            "touch /tmp/secret; while [ ! -s /tmp/secret ]; do sleep 0.02; done; "
            "stat -c %u /tmp/secret; cat /tmp/secret; echo rc=$?; exec sleep 600")
    assert r.code == 0, r
    uuid = r.out.strip()
    try:
        shells: list[int] = []
        deadline = time.monotonic() + 10
        while not shells and time.monotonic() < deadline:
            shells = [p for p in pids_of_pod(uuid) if Path(f"/proc/{p}/cmdline").read_bytes().startswith(b"/bin/sh\0")]
            time.sleep(0.02)
        bind_into_app(shells[0], secret, "/tmp/secret")
        logs = ""
        while "rc=" not in logs and time.monotonic() < deadline:
            logs = cli("logs", uuid).out
            time.sleep(0.05)
    finally:
        cli("stop", "--force", uuid)
    if private:  # host root's file is nobody's in the pod, and its root has no power over it
        assert logs.splitlines()[0] == "65534" and logs.splitlines()[-1] == "rc=1", logs
    else:
        assert logs.splitlines() == ["0", "host secret", "rc=0"]
