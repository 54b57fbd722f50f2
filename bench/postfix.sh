# Sourced by bench/run.sh: a private Postfix instance used as a relay.
# pf_start DIR SMTP_PORT SINK_PORT   make config + queue under DIR and start it
# pf_stop DIR                        stop it (idempotent)
# pf_pids DIR                        pids of the instance's processes

pf_start() {
  local dir=$1 port=$2 sink=$3
  mkdir -p "$dir/etc" "$dir/spool" "$dir/data"
  chmod 755 "$dir"
  chown postfix "$dir/data"
  cat >"$dir/etc/main.cf" <<CF
compatibility_level = 3.6
queue_directory = $dir/spool
data_directory = $dir/data
mail_owner = postfix
setgid_group = postdrop
myhostname = bench-postfix.localdomain
mydomain = localdomain
myorigin = \$myhostname
mydestination =
relay_domains =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost = [127.0.0.1]:$sink
local_transport = error:local delivery disabled
alias_maps =
alias_database =
message_size_limit = 52428800
smtp_tls_security_level = none
smtpd_tls_security_level = none
smtp_dns_support_level = disabled
biff = no
append_dot_mydomain = no
maillog_file = $dir/maillog
maillog_file_prefixes = $dir
CF
  cat >"$dir/etc/master.cf" <<CF
127.0.0.1:$port inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
CF
  postfix -c "$dir/etc" start >"$dir/start.log" 2>&1 || { cat "$dir/start.log" "$dir/maillog" 2>/dev/null >&2; return 1; }
  wait_port "$port" 10
}

pf_stop() {
  local dir=$1
  [ -f "$dir/etc/main.cf" ] || return 0
  postfix -c "$dir/etc" abort >/dev/null 2>&1 || true
  # Queues are empty when this is called: abort is safe and quick; wait for
  # the master to be gone.
  local pidf=$dir/spool/pid/master.pid i
  for i in $(seq 50); do
    [ -f "$pidf" ] && kill -0 "$(tr -d ' ' <"$pidf")" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -9 "$(tr -d ' ' <"$pidf")" 2>/dev/null || true
}

# pf_pids DIR: the master and its children.
pf_pids() {
  local pidf=$1/spool/pid/master.pid m
  [ -f "$pidf" ] || return 0
  m=$(tr -d ' ' <"$pidf")
  echo "$m"
  pgrep -P "$m" || true
}

# pf_reload DIR: replace every daemon process with a fresh one (the master
# stays), so their peak RSS starts again from zero.
pf_reload() {
  local dir=$1 i n0
  postfix -c "$dir/etc" reload >/dev/null 2>&1 || return 1
  # Idle daemons exit on reload; wait until only the master and its
  # always-on children are left (at most 3 s).
  for i in $(seq 30); do
    n0=$(pf_pids "$dir" | wc -l)
    [ "$n0" -le 3 ] && break
    sleep 0.1
  done
}
