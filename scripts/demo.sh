#!/usr/bin/env bash
# scripts/demo.sh -- build creditd and run it against a private PostgreSQL.
#
#   scripts/demo.sh          install missing packages, build into build/, start
#                            the private cluster (./var/pg), migrate, and run the
#                            daemon in the foreground with config/creditd.conf.example
#                            (Ctrl-C stops the daemon; PostgreSQL keeps running)
#   scripts/demo.sh stop     stop the private PostgreSQL cluster
#   scripts/demo.sh status   is the cluster running? where is it?
#   scripts/demo.sh psql     psql on the demo database
#   scripts/demo.sh reset    stop the cluster and delete ./var (all demo data)
#
# Run as root on Debian 12 (or as a user who already has the packages).
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CONFIG=config/creditd.conf.example
BIN=build/daemon/creditd

# host:port from the [server] listen key of the config (default 127.0.0.1:8080).
config_listen() {
	awk '
		/^[ \t]*\[/ { section = $0; gsub(/[][ \t]/, "", section); next }
		section == "server" && $0 ~ /^[ \t]*listen[ \t]*=/ {
			sub(/^[^=]*=[ \t]*/, ""); sub(/[ \t]*#.*$/, ""); sub(/[ \t]+$/, ""); print; exit
		}' "$CREDITD_ROOT/$CONFIG"
}

run_demo() {
	local listen url
	cd "$CREDITD_ROOT"
	ensure_packages
	ensure_service_user
	build_dir build || die "build failed"
	[ -x "$BIN" ] || die "$BIN was not built"
	[ -f "$CONFIG" ] || die "$CONFIG is missing"
	pg_start
	CREDITD_DATABASE_CONNINFO=$(pg_conninfo)
	export CREDITD_DATABASE_CONNINFO

	listen=$(config_listen)
	listen=${listen:-127.0.0.1:8080}
	url="http://$listen"
	if curl -fsS -m 2 "$url/healthz" >/dev/null 2>&1; then
		log "a creditd already answers on $url (another scripts/demo.sh?); not starting a second one"
		print_banner "$url"
		exit 0
	fi

	log "applying migrations"
	"$BIN" --config "$CONFIG" migrate || die "creditd migrate failed"
	print_banner "$url"
	log "starting creditd in the foreground (Ctrl-C to stop)"
	exec "$BIN" --config "$CONFIG"
}

# "NAME SHA256 SCOPES" for each [token.NAME] section of the config.
config_tokens() {
	awk '
		function flush() { if (name != "") print name, (sha == "" ? "-" : sha), (scopes == "" ? "-" : scopes) }
		/^[ \t]*\[/ {
			flush(); name = ""; sha = ""; scopes = ""
			s = $0; gsub(/[][ \t]/, "", s)
			if (s ~ /^token\./) name = substr(s, 7)
			next
		}
		name != "" && /^[ \t]*sha256[ \t]*=/ { v = $0; sub(/^[^=]*=[ \t]*/, "", v); sub(/[ \t#].*$/, "", v); sha = v }
		name != "" && /^[ \t]*scopes[ \t]*=/ { v = $0; sub(/^[^=]*=[ \t]*/, "", v); sub(/[ \t]*#.*$/, "", v); gsub(/[ \t]/, "", v); scopes = v }
		END { flush() }' "$CREDITD_ROOT/$CONFIG"
}

# The demo secrets are demo-NAME-token; list those the config really accepts.
demo_tokens() {
	local name sha scopes secret
	while read -r name sha scopes; do
		secret=demo-$name-token
		if [ "$(printf '%s' "$secret" | sha256sum | cut -d' ' -f1)" = "$sha" ]; then
			printf '  %-22s scopes %s\n' "$secret" "$scopes"
		fi
	done < <(config_tokens)
}

print_banner() {
	local url=$1
	cat <<-EOF

		creditd demo
		  API:       $url
		  config:    $CREDITD_ROOT/$CONFIG
		  database:  $PG_DATA (socket $PG_SOCK, no TCP)
		  conninfo:  CREDITD_DATABASE_CONNINFO='$CREDITD_DATABASE_CONNINFO'

		Demo tokens (Authorization: Bearer <token>), from the config:
		$(demo_tokens)

		Try:
		  curl -s $url/healthz
		  curl -s -H 'Authorization: Bearer demo-admin-token' $url/readyz
		  curl -s -H 'Authorization: Bearer demo-admin-token' $url/v1/accounts

		Stop: Ctrl-C (daemon), then scripts/demo.sh stop (PostgreSQL).

	EOF
}

case ${1:-run} in
run) run_demo ;;
stop) pg_stop ;;
status)
	pg_paths
	if pg_is_running; then
		echo "PostgreSQL running: data $PG_DATA, socket $PG_SOCK, log $PG_LOGFILE"
	else
		echo "PostgreSQL not running (data $PG_DATA)"
		exit 3
	fi
	;;
psql)
	shift
	pg_paths
	pg_is_running || die "PostgreSQL is not running; start the demo first"
	exec "$PG_BIN/psql" -X -h "$PG_SOCK" -p 5432 -U "$CREDITD_PG_SUPERUSER" -d "$CREDITD_DBNAME" "$@"
	;;
reset)
	pg_stop
	pg_paths
	log "deleting $PG_DATA, $PG_SOCK and $CREDITD_ROOT/var"
	rm -rf "$PG_DATA" "$PG_SOCK" "$(dirname "$PG_LOGFILE")" "${CREDITD_ROOT:?}/var"
	rmdir "$(dirname "$PG_DATA")" 2>/dev/null || true
	;;
-h | --help | help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' ;;
*) die "unknown command '$1' (run, stop, status, psql, reset)" ;;
esac
