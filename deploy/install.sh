#!/usr/bin/env bash
# Installs Apogee as systemd services: binaries, the `apogee` system user, directories, configs
# and units. Run as root. `--root DIR` installs into a staging root instead of /, `--dry-run`
# prints every action and changes nothing. `--uninstall` removes what this script installed but
# keeps configs and message data; only `--uninstall --purge` deletes them.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: deploy/install.sh [options]
       deploy/install.sh --uninstall [--purge] [options]

Options:
  --bin-dir DIR   take apogee-namesrv, apogee-broker and apogee from DIR
                  (default: build them with `cargo build --release` in this repository)
  --config FILE   a config to install into /etc/apogee/, named after the unit instance it is for
                  (namesrv.toml, broker-a.toml, ...); repeat for several
                  (default: deploy/examples/single-node/*.toml)
  --root DIR      install into DIR as if it were / (a staging root); systemctl is not called
  --dry-run       print what would be done and change nothing
  --uninstall     stop and remove the services, binaries, units and system entries;
                  configs (/etc/apogee) and data (/var/lib/apogee) are kept
  --purge         with --uninstall: also delete /etc/apogee and /var/lib/apogee, which hold
                  every stored message
  -h, --help      this text
EOF
}

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
bin_dir=""
root=""
dry_run=0
uninstall=0
purge=0
configs=()

while [ $# -gt 0 ]; do
    case "$1" in
        --bin-dir) bin_dir="${2:?--bin-dir needs a directory}"; shift 2 ;;
        --config) configs+=("${2:?--config needs a file}"); shift 2 ;;
        --root) root="${2:?--root needs a directory}"; shift 2 ;;
        --dry-run) dry_run=1; shift ;;
        --uninstall) uninstall=1; shift ;;
        --purge) purge=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "install.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
done

die() {
    echo "install.sh: $*" >&2
    exit 1
}

[ "$purge" = 0 ] || [ "$uninstall" = 1 ] || die "--purge only goes with --uninstall"
if [ -n "$root" ]; then
    [ -d "$root" ] || die "--root $root is not a directory"
    root="$(cd "$root" && pwd)"
fi

# Every change goes through here, so that --dry-run shows exactly what a real run does.
run() {
    echo "+ $*"
    if [ "$dry_run" = 0 ]; then
        "$@"
    fi
}

# Writes stdin to a file (as root would, with the given mode), or only says so.
write_file() {
    local mode="$1" dest="$2"
    echo "+ write $dest (mode $mode)"
    if [ "$dry_run" = 0 ]; then
        mkdir -p "$(dirname "$dest")"
        cat >"$dest"
        chmod "$mode" "$dest"
    else
        cat >/dev/null
    fi
}

# systemd manages the services only on a live system, not in a staging root.
systemd_live() {
    [ -z "$root" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null
}

BIN="$root/usr/local/bin"
UNITS="$root/etc/systemd/system"
ETC="$root/etc/apogee"
DATA="$root/var/lib/apogee"
SYSUSERS="$root/usr/lib/sysusers.d/apogee.conf"
TMPFILES="$root/usr/lib/tmpfiles.d/apogee.conf"
DOCS="$root/usr/local/share/doc/apogee"
BINARIES=(apogee-namesrv apogee-broker apogee)
UNIT_FILES=(apogee-namesrv.service apogee-broker@.service)

if [ "$uninstall" = 1 ]; then
    if systemd_live; then
        run systemctl stop 'apogee-broker@*.service' apogee-namesrv.service || true
        run systemctl disable apogee-namesrv.service apogee-broker@.service || true
    fi
    # Enablement links, also those of a staging root.
    for link in "$UNITS"/*.wants/apogee-namesrv.service "$UNITS"/*.wants/apogee-broker@*.service; do
        if [ -L "$link" ]; then run rm -f "$link"; fi
    done
    for unit in "${UNIT_FILES[@]}"; do
        if [ -e "$UNITS/$unit" ]; then run rm -f "$UNITS/$unit"; fi
    done
    for bin in "${BINARIES[@]}"; do
        if [ -e "$BIN/$bin" ]; then run rm -f "$BIN/$bin"; fi
    done
    for file in "$SYSUSERS" "$TMPFILES"; do
        if [ -e "$file" ]; then run rm -f "$file"; fi
    done
    if [ -e "$DOCS" ]; then run rm -rf "$DOCS"; fi
    if systemd_live; then run systemctl daemon-reload; fi
    if [ "$purge" = 1 ]; then
        echo "install.sh: --purge: deleting configs and every stored message"
        if [ -e "$ETC" ]; then run rm -rf "$ETC"; fi
        if [ -e "$DATA" ]; then run rm -rf "$DATA"; fi
    else
        echo "install.sh: kept configs in $ETC and data in $DATA (--purge deletes them)"
    fi
    echo "install.sh: the system user 'apogee' is kept: files may still belong to it"
    exit 0
fi

if [ -z "$bin_dir" ]; then
    command -v cargo >/dev/null || die "cargo not found: build the binaries elsewhere and pass --bin-dir"
    run cargo build --release --quiet --manifest-path "$repo/Cargo.toml" -p namesrv -p broker -p client
    bin_dir="$repo/target/release"
fi
for bin in "${BINARIES[@]}"; do
    [ -x "$bin_dir/$bin" ] || [ "$dry_run" = 1 ] || die "$bin_dir/$bin is missing or not executable"
done
if [ ${#configs[@]} -eq 0 ]; then
    configs=("$here"/examples/single-node/*.toml)
fi
for config in "${configs[@]}"; do
    [ -f "$config" ] || die "config $config does not exist"
done
[ "$(id -u)" = 0 ] || [ "$dry_run" = 1 ] || die "run as root (the service user and its directories need it)"

echo "== binaries into $BIN"
for bin in "${BINARIES[@]}"; do
    run install -D -m 0755 "$bin_dir/$bin" "$BIN/$bin"
done

echo "== the system user 'apogee'"
write_file 0644 "$SYSUSERS" <<'EOF'
# The user Apogee's services run as (apogee-namesrv.service, apogee-broker@.service).
u apogee - "Apogee message broker" /var/lib/apogee /usr/sbin/nologin
EOF
if command -v systemd-sysusers >/dev/null; then
    # A staging root may not have /etc yet; sysusers writes passwd and group there.
    if [ -n "$root" ] && [ ! -d "$root/etc" ]; then run mkdir -p "$root/etc"; fi
    run systemd-sysusers ${root:+--root="$root"} apogee.conf
elif [ -z "$root" ]; then
    if ! id apogee >/dev/null 2>&1; then
        run useradd --system --user-group --home-dir /var/lib/apogee --shell /usr/sbin/nologin apogee
    fi
else
    die "systemd-sysusers is needed to create the user inside --root"
fi

echo "== directories: $ETC (configs), $DATA (stores)"
write_file 0644 "$TMPFILES" <<'EOF'
# Apogee's directories; each service's own store below /var/lib/apogee is its StateDirectory.
d /etc/apogee 0755 root root -
d /var/lib/apogee 0750 apogee apogee -
EOF
if command -v systemd-tmpfiles >/dev/null; then
    run systemd-tmpfiles --create ${root:+--root="$root"} apogee.conf
else
    run install -d -m 0755 "$ETC"
    run install -d -m 0750 -o apogee -g apogee "$DATA"
fi

echo "== configs into $ETC"
for config in "${configs[@]}"; do
    dest="$ETC/$(basename "$config")"
    if [ ! -e "$dest" ]; then
        run install -m 0644 "$config" "$dest"
    elif cmp -s "$config" "$dest"; then
        echo "  $dest is up to date"
    else
        # An operator's edits are never overwritten; the shipped version lands beside them.
        run install -m 0644 "$config" "$dest.new"
        echo "  $dest differs from $config: kept it, wrote $dest.new"
    fi
done

echo "== systemd units into $UNITS"
for unit in "${UNIT_FILES[@]}"; do
    run install -D -m 0644 "$here/systemd/$unit" "$UNITS/$unit"
done
if systemd_live; then run systemctl daemon-reload; fi

echo "== operator docs into $DOCS (the units' Documentation=)"
for doc in "$repo"/docs/*.md; do
    run install -D -m 0644 "$doc" "$DOCS/$(basename "$doc")"
done

echo
echo "Installed. Start the services and have them start at boot with:"
for config in "${configs[@]}"; do
    if [ "$(basename "$config")" = namesrv.toml ]; then echo "  systemctl enable --now apogee-namesrv.service"; fi
done
for config in "${configs[@]}"; do
    name="$(basename "$config" .toml)"
    if [ "$name" != namesrv ]; then echo "  systemctl enable --now apogee-broker@$name.service"; fi
done
echo "Logs: journalctl -u apogee-namesrv -u 'apogee-broker@*'. Operations guide: $DOCS/operations.md"
