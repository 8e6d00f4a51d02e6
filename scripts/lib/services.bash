# The machine's MariaDB (127.0.0.1:3306, root without a password) and Redis (127.0.0.1:6379),
# started when they do not answer and installed from Debian's packages when missing (as root):
# for CI and scripts/cluster. Source it after defining `die MESSAGE`.
#
#   ensure_mariadb   ensure_redis
# shellcheck shell=bash

apt_updated=
apt_install() {
  [ "$(id -u)" = 0 ] || die "$* missing and not root: install them (apt-get install $*)"
  echo "installing $* from Debian's packages"
  if [ -z "$apt_updated" ]; then
    apt-get update -qq || die "apt-get update failed"
    apt_updated=1
  fi
  # No service starts from package scripts (there is no init system here); we start them below.
  local policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    policy=1
  fi
  local status=0
  apt-get install -y -qq "$@" >/dev/null || status=$?
  [ -z "$policy" ] || rm -f /usr/sbin/policy-rc.d
  [ "$status" = 0 ] || die "apt-get install $* failed"
}

# wait_for SECONDS COMMAND...: retries COMMAND every half second until it succeeds.
wait_for() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.5
  done
}

redis_up() { [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = PONG ]; }

ensure_redis() {
  redis_up && return 0
  command -v redis-server >/dev/null 2>&1 || apt_install redis-server
  echo "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log >/dev/null
  wait_for 20 redis_up || {
    tail -n 50 /var/log/redis/ci.log >&2 || true
    die "Redis did not answer on 127.0.0.1:6379"
  }
}

mariadb_tcp() { mariadb -uroot -h127.0.0.1 -P3306 -e 'select 1'; }
mariadb_socket() { mariadb -uroot -e 'select 1'; }

ensure_mariadb() {
  mariadb_tcp >/dev/null 2>&1 && return 0
  { [ -x /usr/sbin/mariadbd ] && command -v mariadb >/dev/null 2>&1; } || apt_install mariadb-server
  if ! mariadb_socket >/dev/null 2>&1; then
    echo "starting MariaDB"
    if id mysql >/dev/null 2>&1; then install -d -o mysql -g mysql /run/mysqld; fi
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
    wait_for 60 mariadb_socket || die "MariaDB did not start (see its error log under /var/log/mysql or /var/lib/mysql)"
  fi
  if ! mariadb_tcp >/dev/null 2>&1; then
    # A fresh Debian install lets root in only through the socket; the tests connect over TCP
    # as root without a password, like the machines this project runs on.
    echo "allowing root without a password over TCP on 127.0.0.1 (test database server)"
    mariadb -uroot -e "ALTER USER root@localhost IDENTIFIED VIA mysql_native_password USING PASSWORD('') OR unix_socket;
      CREATE USER IF NOT EXISTS root@'127.0.0.1' IDENTIFIED BY '';
      GRANT ALL PRIVILEGES ON *.* TO root@'127.0.0.1' WITH GRANT OPTION;"
    wait_for 10 mariadb_tcp || die "MariaDB does not accept root without a password on 127.0.0.1:3306"
  fi
}

