# shellcheck shell=bash
# Shared set-up code for scripts/demo.sh and scripts/test.sh. Source it; it
# defines functions and a few variables and does nothing by itself.
#
# Target: a Debian 12 machine, run as root (packages are installed with
# apt-get) or as a user who already has the packages.

# System tools first (never a pyenv/virtualenv shim for python3 or meson).
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin${PATH:+:$PATH}

# Repository root (the directory holding meson.build and scripts/).
CREDITD_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)

# Debian packages needed to build, test and demo creditd.
CREDITD_PACKAGES=(
	build-essential meson ninja-build pkg-config
	libevent-dev libjansson-dev libpq-dev uuid-dev libcmocka-dev libssl-dev libsystemd-dev
	postgresql python3 curl clang libclang-rt-14-dev systemd # libclang-rt: libFuzzer/ASan runtimes (scripts/fuzz.sh)
	procps # /bin/kill, for ExecReload= in systemd/creditd.service (checked by test_systemd)
)

# The unprivileged account that owns PostgreSQL clusters when we run as root
# (PostgreSQL refuses to run as root). Also the systemd unit's User=.
CREDITD_USER=${CREDITD_USER:-creditd}

# Database superuser name in our private clusters (independent of the OS user).
CREDITD_PG_SUPERUSER=creditd
CREDITD_DBNAME=creditd

# Use the system Python, never a pyenv shim.
# shellcheck disable=SC2034
CREDITD_PYTHON=/usr/bin/python3

log() { printf '==> %s\n' "$*" >&2; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
	printf 'error: %s\n' "$*" >&2
	exit 1
}

is_root() { [ "$(id -u)" -eq 0 ]; }

# ---------------------------------------------------------------------------
# Packages

# Prints the packages of CREDITD_PACKAGES that are not installed.
missing_packages() {
	local p status
	for p in "${CREDITD_PACKAGES[@]}"; do
		status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
		case $status in
		ii*) ;;
		*) printf '%s\n' "$p" ;;
		esac
	done
}

# Installs whatever is missing with apt-get (only then: a re-run with
# everything present costs one dpkg-query per package).
ensure_packages() {
	local missing
	command -v dpkg-query >/dev/null || die "dpkg-query not found: this script expects Debian 12"
	mapfile -t missing < <(missing_packages)
	[ "${#missing[@]}" -eq 0 ] && return 0
	is_root || die "missing packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})"
	log "installing: ${missing[*]}"
	# We run our own private clusters; do not let the postgresql package create
	# and start a system-wide "main" cluster on a machine that has none yet.
	if [ ! -d /etc/postgresql ] || [ -z "$(ls -A /etc/postgresql 2>/dev/null)" ]; then
		mkdir -p /etc/postgresql-common/createcluster.d
		if [ ! -e /etc/postgresql-common/createcluster.d/creditd.conf ]; then
			printf '%s\n' '# Written by creditd scripts/lib.sh: creditd uses private clusters.' \
				'create_main_cluster = false' >/etc/postgresql-common/createcluster.d/creditd.conf
		fi
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends \
		-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
		"${missing[@]}" </dev/null
	mapfile -t missing < <(missing_packages)
	[ "${#missing[@]}" -eq 0 ] || die "still missing after apt-get: ${missing[*]}"
}

# ---------------------------------------------------------------------------
# The service account

# Creates the system user/group CREDITD_USER if missing (root only).
ensure_service_user() {
	is_root || return 0
	if ! getent group "$CREDITD_USER" >/dev/null; then
		groupadd --system "$CREDITD_USER" 2>/dev/null ||
			getent group "$CREDITD_USER" >/dev/null || die "cannot create group $CREDITD_USER"
	fi
	if ! getent passwd "$CREDITD_USER" >/dev/null; then
		log "creating system user $CREDITD_USER"
		useradd --system --gid "$CREDITD_USER" --no-create-home --home-dir /nonexistent \
			--shell /usr/sbin/nologin --comment "creditd daemon" "$CREDITD_USER" 2>/dev/null ||
			getent passwd "$CREDITD_USER" >/dev/null || die "cannot create user $CREDITD_USER"
	fi
}

# Runs a command as the cluster owner: CREDITD_USER when root, else ourselves.
# The working directory is / so that a private cwd (e.g. under /root) does
# not bother the unprivileged user.
as_pg_owner() {
	if is_root; then
		(cd / && runuser -u "$CREDITD_USER" -- "$@")
	else
		(cd / && "$@")
	fi
}

# ---------------------------------------------------------------------------
# PostgreSQL binaries

# Prints the bin directory of the newest installed PostgreSQL server
# (/usr/lib/postgresql/N/bin on Debian), or $PG_BINDIR if set.
pg_bindir() {
	local d best=''
	if [ -n "${PG_BINDIR:-}" ]; then
		printf '%s\n' "$PG_BINDIR"
		return 0
	fi
	best=$(for d in /usr/lib/postgresql/*/bin; do
		[ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && printf '%s\n' "$d"
	done | sort -V | tail -n 1)
	if [ -z "$best" ] && command -v initdb >/dev/null; then
		best=$(dirname "$(command -v initdb)")
	fi
	[ -n "$best" ] || die "no PostgreSQL server found (initdb); install the postgresql package"
	printf '%s\n' "$best"
}

# ---------------------------------------------------------------------------
# Builds

# build_dir DIR [meson setup options...]: configures DIR once, then builds.
build_dir() {
	local dir=$1
	shift
	if [ ! -f "$CREDITD_ROOT/$dir/build.ninja" ]; then
		# A half-configured directory (interrupted setup) cannot be set up again.
		rm -rf "${CREDITD_ROOT:?}/$dir"
		log "meson setup $dir $*"
		(cd "$CREDITD_ROOT" && meson setup "$dir" "$@") || return 1
	fi
	log "building $dir"
	(cd "$CREDITD_ROOT" && ninja -C "$dir") || return 1
}

# ---------------------------------------------------------------------------
# The demo cluster: ./var/pg (data), ./var/run (Unix socket), ./var/log.
# No TCP at all (listen_addresses = ''), trust authentication on the socket,
# whose directory only the cluster owner (and root) can enter.
#
# When root and the checkout is not reachable by CREDITD_USER (e.g. it lives
# under /root, mode 0700), the cluster goes to /var/lib/creditd-demo/<id>
# instead and ./var/pg and ./var/run become symbolic links to it.

# Sets PG_DATA, PG_SOCK, PG_LOGFILE and PG_BIN.
pg_paths() {
	local var=$CREDITD_ROOT/var base id
	PG_BIN=$(pg_bindir)
	ensure_service_user
	mkdir -p "$var"
	chmod 0755 "$var"
	if [ -L "$var/pg" ]; then
		base=$(dirname "$(readlink -f "$var/pg")")
	elif [ -d "$var/pg" ] || ! is_root || (cd / && runuser -u "$CREDITD_USER" -- test -x "$CREDITD_ROOT"); then
		base=$var
	else
		id=$(printf '%s' "$CREDITD_ROOT" | cksum | cut -d' ' -f1)
		base=/var/lib/creditd-demo/$id
		log "$CREDITD_ROOT is not reachable by user $CREDITD_USER; cluster goes to $base"
		mkdir -p "$base"
		chmod 0755 /var/lib/creditd-demo "$base"
		ln -sfn "$base/pg" "$var/pg"
		ln -sfn "$base/run" "$var/run"
	fi
	PG_DATA=$base/pg
	PG_SOCK=$base/run
	PG_LOGFILE=$base/log/postgresql.log
	# An existing cluster needs the server version that created it.
	if [ -z "${PG_BINDIR:-}" ] && [ -f "$PG_DATA/PG_VERSION" ] &&
		[ -x "/usr/lib/postgresql/$(cat "$PG_DATA/PG_VERSION")/bin/pg_ctl" ]; then
		PG_BIN=/usr/lib/postgresql/$(cat "$PG_DATA/PG_VERSION")/bin
	fi
}

# libpq connection string for the demo cluster.
pg_conninfo() {
	printf 'host=%s port=5432 user=%s dbname=%s\n' "$PG_SOCK" "$CREDITD_PG_SUPERUSER" "$CREDITD_DBNAME"
}

pg_is_running() {
	[ -f "$PG_DATA/PG_VERSION" ] && as_pg_owner "$PG_BIN/pg_ctl" status -D "$PG_DATA" >/dev/null 2>&1
}

# Creates (once), configures and starts (unless running) the demo cluster,
# and creates the database.
pg_start() {
	local owner
	pg_paths
	owner=$(id -un)
	is_root && owner=$CREDITD_USER
	mkdir -p "$PG_SOCK" "$(dirname "$PG_LOGFILE")"
	chown "$owner:" "$PG_SOCK" "$(dirname "$PG_LOGFILE")"
	chmod 0750 "$PG_SOCK"
	if [ ! -f "$PG_DATA/PG_VERSION" ]; then
		log "initdb $PG_DATA"
		rm -rf "$PG_DATA"
		mkdir -p "$PG_DATA"
		chown "$owner:" "$PG_DATA"
		chmod 0700 "$PG_DATA"
		as_pg_owner "$PG_BIN/initdb" -D "$PG_DATA" -U "$CREDITD_PG_SUPERUSER" \
			--auth=trust --encoding=UTF8 --locale=C --no-sync >/dev/null ||
			die "initdb failed"
		printf "\ninclude_if_exists = 'creditd-demo.conf'\n" >>"$PG_DATA/postgresql.conf"
	fi
	# Rewritten on every start, so a moved checkout keeps working.
	cat >"$PG_DATA/creditd-demo.conf" <<-EOF
		# Written by scripts/lib.sh on every start; edit there.
		listen_addresses = ''
		unix_socket_directories = '$PG_SOCK'
		unix_socket_permissions = 0770
		port = 5432
		max_connections = 50
		shared_buffers = 32MB
		log_min_messages = warning
	EOF
	chown "$owner:" "$PG_DATA/creditd-demo.conf"
	if pg_is_running; then
		log "PostgreSQL already running ($PG_DATA)"
	else
		log "starting PostgreSQL ($PG_DATA, socket in $PG_SOCK)"
		as_pg_owner "$PG_BIN/pg_ctl" start -w -t 60 -D "$PG_DATA" -l "$PG_LOGFILE" >/dev/null || {
			tail -n 20 "$PG_LOGFILE" >&2 || true
			die "PostgreSQL did not start (log: $PG_LOGFILE)"
		}
	fi
	if [ "$(pg_psql postgres -c "SELECT 1 FROM pg_database WHERE datname = '$CREDITD_DBNAME'")" != 1 ]; then
		log "creating database $CREDITD_DBNAME"
		"$PG_BIN/createdb" -h "$PG_SOCK" -p 5432 -U "$CREDITD_PG_SUPERUSER" "$CREDITD_DBNAME" ||
			die "createdb failed"
	fi
}

# pg_psql DBNAME [psql args...]: psql on the demo cluster.
pg_psql() {
	local db=$1
	shift
	"$PG_BIN/psql" -X -A -t -v ON_ERROR_STOP=1 -h "$PG_SOCK" -p 5432 -U "$CREDITD_PG_SUPERUSER" -d "$db" "$@"
}

pg_stop() {
	pg_paths
	if pg_is_running; then
		log "stopping PostgreSQL ($PG_DATA)"
		as_pg_owner "$PG_BIN/pg_ctl" stop -w -t 60 -m fast -D "$PG_DATA" >/dev/null
	else
		log "PostgreSQL is not running ($PG_DATA)"
	fi
}
