#!/usr/bin/env bash
# A real IRC client against miochat: installs irssi (and tmux) from the system
# package manager if needed, starts a fresh server with an IRC listener, runs irssi
# under tmux, joins #lobby, and checks both directions against a line-protocol client:
# irssi's message reaches the line client, and the line client's answer appears on
# irssi's screen. Prints the screen (tmux capture-pane). Loopback only; bounded waits.
# Then the same again with irssi over TLS (`/connect -4 -tls localhost`, verifying a certificate
# made here with `miochat config make-cert`) on the server's --irc-tls-listen port.
# Between the two, a moderation scene: irssi creates #modroom (so it is the
# operator), ops a line user, kicks a second irssi, sets +m and +k, and the line user
# sees each change as an EVENT line.
# Then SASL: an account registered from the line protocol, and irssi logging in to it
# with -sasl_mechanism PLAIN; a line client's /whois shows the account.
# Last, WeeChat (weechat-headless, no terminal needed) with the IRCv3 capabilities
# server-time and batch (and echo-message from WeeChat 4.0 on, which implements it):
# a line written in #lobby before WeeChat joined is played back (a chathistory batch)
# and logged at the time it was *sent*, before the join; WeeChat's own message is
# shown once, and the line client's answer arrives; WeeChat logs in to an account
# with its sasl_* options, by SCRAM-SHA-256. Checked in WeeChat's log files.
# Then WeeChat again over TLS, verifying the certificate, shown with its USER name.
set -euo pipefail
cd "$(dirname "$0")/.."
# A missing program is installed when we are root with apt-get; otherwise we say
# which one is missing and stop.
need() {
  command -v "$1" >/dev/null 2>&1 && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2"
  else
    echo "missing: $1 (install the $2 package)" >&2
    exit 2
  fi
}
need irssi irssi
need tmux tmux
need weechat-headless weechat-headless
need python3 python3
# The test suite passes the binary it built (MIOCHAT_BIN); run by hand, build one.
if [ -z "${MIOCHAT_BIN:-}" ]; then
  cargo build --release --quiet
  MIOCHAT_BIN=./target/release/miochat
fi
work=$(mktemp -d)
session="miochat-irc-check-$$"
victim="miochat-irc-victim-$$"
cleanup() {
  tmux kill-session -t "$session" 2>/dev/null || true
  tmux kill-session -t "$victim" 2>/dev/null || true
  [ -n "${weechat:-}" ] && kill "$weechat" 2>/dev/null || true
  kill "$server" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# A throwaway certificate for the TLS run (never committed; deleted on exit). Not a
# plain `openssl req -x509`: OpenSSL 3 marks that one CA:TRUE, which strict clients
# refuse as a server's own. make-cert's is CA:FALSE, for localhost and 127.0.0.1.
"$MIOCHAT_BIN" config make-cert localhost --dir "$work" --days 1 > /dev/null
mv "$work/localhost.cert.pem" "$work/cert.pem"
mv "$work/localhost.key.pem" "$work/key.pem"
"$MIOCHAT_BIN" serve --listen 127.0.0.1:0 --irc-listen 127.0.0.1:0 --data-dir "$work/data" \
  --irc-tls-listen 127.0.0.1:0 --tls-cert "$work/cert.pem" --tls-key "$work/key.pem" -q > "$work/addr" &
server=$!
for _ in $(seq 50); do [ "$(wc -l < "$work/addr")" -ge 3 ] && break; sleep 0.1; done
line_addr=$(sed -n 1p "$work/addr" | awk '{print $NF}')
irc_addr=$(sed -n 2p "$work/addr" | awk '{print $NF}')
irc_tls_addr=$(sed -n 3p "$work/addr" | awk '{print $NF}')
echo "server: line protocol on $line_addr, IRC on $irc_addr, IRC over TLS on $irc_tls_addr"

# answerer SECONDS HELLO AWAIT ANSWER: a line-protocol client that sends HELLO (lines
# joined by \n), prints every line it gets, answers the first that starts with AWAIT
# with ANSWER and leaves a second later, or after SECONDS anyway. Run it in the
# background with its output sent to a log.
answerer() {
python3 - "$line_addr" "$@" <<'PY'
import socket, sys, time
host, port = sys.argv[1].rsplit(":", 1)
seconds, hello, await_line, answer = int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
s = socket.create_connection((host, int(port)), timeout=seconds)
f = s.makefile("rw", newline="\n")
f.write(hello + "\n"); f.flush()
deadline = time.time() + seconds
for line in f:
    print(line.rstrip("\n"), flush=True)
    if line.startswith(await_line):
        f.write(answer + "\n"); f.flush()
        time.sleep(1)
        break
    if time.time() > deadline:
        break
PY
}

screen() { tmux capture-pane -p -t "$session"; }
wait_screen() { # wait_screen TEXT: up to 30 s (irssi paces its own commands 2.5 s apart)
  for _ in $(seq 300); do screen | grep -qF -- "$1" && return 0; sleep 0.1; done
  echo "FAIL: irssi never showed: $1"; screen; exit 1
}

check() { # check plain|tls: one irssi session over that transport
mode=$1
if [ "$mode" = plain ]; then
  tmux new-session -d -s "$session" -x 110 -y 24 \
    "irssi --home=$work/irssi-$mode -n irssiuser -c ${irc_addr%:*} -p ${irc_addr##*:}"
else
  tmux new-session -d -s "$session" -x 110 -y 24 "irssi --home=$work/irssi-$mode -n irssiuser"
  sleep 1
  tmux send-keys -t "$session" \
    "/connect -4 -tls -tls_verify -tls_cafile $work/cert.pem localhost ${irc_tls_addr##*:}" Enter
fi
wait_screen "Welcome to the miochat IRC network"
tmux send-keys -t "$session" "/join #lobby" Enter
wait_screen "[Users #lobby]"

# The line-protocol side: wait for irssi's message, then answer it.
answerer 30 "/nick liney$mode" "MSG lobby irssiuser hello from irssi" "hello back from nc" \
  > "$work/line.log" &
line_client=$!
sleep 0.5
tmux send-keys -t "$session" "hello from irssi" Enter
wait_screen "hello back from nc"
wait "$line_client" || true
grep -q "^MSG lobby irssiuser hello from irssi" "$work/line.log" || { echo "FAIL: the line client did not receive irssi's message"; cat "$work/line.log"; exit 1; }
echo "--- line client saw:"
cat "$work/line.log"
echo "--- irssi screen:"
screen
echo "PASS ($mode): irssi and a line-protocol client chatted in #lobby / lobby"
if [ "$mode" = plain ]; then moderation_scene; fi
tmux kill-session -t "$session"
}

moderation_scene() {
# --- Moderation scene -------------------------------------------------------------
tmux send-keys -t "$session" "/join #modroom" Enter
wait_screen "[Users #modroom]"
python3 - "$line_addr" > "$work/mod.log" <<'PY' &
import socket, sys, time
host, port = sys.argv[1].rsplit(":", 1)
s = socket.create_connection((host, int(port)), timeout=60)
f = s.makefile("rw", newline="\n")
f.write("/nick modline\n/join modroom\n"); f.flush()
want = ["EVENT modroom mode irssiuser +o modline", "EVENT modroom kick irssiuser victim",
        "EVENT modroom mode irssiuser +m", "EVENT modroom mode irssiuser +k sesame"]
deadline = time.time() + 90
for line in f:
    print(line.rstrip("\n"), flush=True)
    want = [w for w in want if not line.startswith(w)]
    if not want or time.time() > deadline:
        break
PY
mod_client=$!
tmux new-session -d -s "$victim" -x 110 -y 24 \
  "irssi --home=$work/irssi-victim -n victim -c ${irc_addr%:*} -p ${irc_addr##*:}"
for _ in $(seq 300); do tmux capture-pane -p -t "$victim" | grep -qF "Welcome to the miochat" && break; sleep 0.1; done
tmux send-keys -t "$victim" "/join #modroom" Enter
wait_screen "victim"
wait_log() { # wait_log TEXT: up to 30 s for the line user to see TEXT
  for _ in $(seq 300); do grep -qF -- "$1" "$work/mod.log" && return 0; sleep 0.1; done
  echo "FAIL: the line user never saw: $1"; cat "$work/mod.log"; screen; exit 1
}
wait_log "EVENT modroom join victim"
tmux send-keys -t "$session" "/op modline" Enter
wait_log "EVENT modroom mode irssiuser +o modline"
tmux send-keys -t "$session" "/kick victim behave" Enter
wait_log "EVENT modroom kick irssiuser victim behave"
tmux send-keys -t "$session" "/mode #modroom +m" Enter
wait_log "EVENT modroom mode irssiuser +m"
tmux send-keys -t "$session" "/mode #modroom +k sesame" Enter
wait_log "EVENT modroom mode irssiuser +k sesame"
wait "$mod_client" || true
echo "--- line client (moderation) saw:"
cat "$work/mod.log"
echo "--- irssi (operator) screen:"
screen
echo "--- irssi (kicked) screen:"
tmux capture-pane -p -t "$victim"
tmux capture-pane -p -t "$victim" | grep -qF "behave" || { echo "FAIL: the kicked irssi did not show the kick"; exit 1; }
echo "PASS: irssi opped a line user, kicked another irssi, set +m and +k; the line user saw each change"
}

weechat_check() {
# --- WeeChat: server-time, echo-message, chathistory playback ----------------------
# WeeChat implements echo-message from 4.0 on; an older one (Debian 12 has 3.8)
# prints its own line at once *and* again when the server echoes it, so it is only
# asked for server-time and batch, and the echo is checked by the integration tests.
version=$(weechat-headless --version | head -1)
caps="server-time,batch"
if [ "$(printf '%s\n' 4.0 "$version" | sort -V | head -1)" = 4.0 ]; then
  caps="server-time,echo-message,batch"
fi
answerer 60 $'/nick lineywee\nsaid before weechat came' \
  "MSG lobby weeuser hello from weechat" "hello back to weechat" > "$work/wee-line.log" &
wee_line=$!
sleep 2 # so that the played-back line's time differs from the join's
make_account weeuser wee-secret # WeeChat logs in to it by SCRAM-SHA-256
weechat-headless --dir "$work/weechat" -r "/set logger.file.flush_delay 0; \
/set logger.file.path $work/wlogs; /set fifo.file.path $work/wfifo; \
/server add mio ${irc_addr%:*}/${irc_addr##*:} -notls; \
/set irc.server.mio.capabilities \"$caps\"; \
/set irc.server.mio.sasl_mechanism scram-sha-256; /set irc.server.mio.sasl_username weeuser; \
/set irc.server.mio.sasl_password wee-secret; \
/set irc.server.mio.nicks weeuser; /set irc.server.mio.autojoin #lobby; /connect mio" \
  > /dev/null 2>&1 &
weechat=$!
chan="$work/wlogs/irc.mio.#lobby.weechatlog"
srvlog="$work/wlogs/irc.server.mio.weechatlog"
wait_wlog() { # wait_wlog TEXT: up to 30 s for WeeChat's #lobby log to show TEXT
  for _ in $(seq 300); do grep -qF -- "$1" "$chan" 2>/dev/null && return 0; sleep 0.1; done
  echo "FAIL: WeeChat never showed: $1"; cat "$chan" "$srvlog" 2>/dev/null; exit 1
}
wait_wlog "weeuser (~"
wait_wlog ".ip) has joined #lobby" # ~user@cloak: the USER name, the hashed address
wait_wlog "said before weechat came"
echo 'irc.server.mio */msg #lobby hello from weechat' > "$work/wfifo"
wait_wlog "hello back to weechat"
wait "$wee_line" || true
sleep 0.5
echo "--- WeeChat $version, capabilities asked: $caps; its server buffer:"
grep "client capability" "$work/wlogs/irc.server.mio.weechatlog"
echo "--- WeeChat #lobby log:"
cat "$chan"
grep -q "client capability, enabled: .*server-time" "$work/wlogs/irc.server.mio.weechatlog" \
  || { echo "FAIL: WeeChat did not enable server-time"; exit 1; }
grep -q "SASL authentication successful" "$work/wlogs/irc.server.mio.weechatlog" \
  || { echo "FAIL: WeeChat did not log in with SASL"; cat "$work/wlogs/irc.server.mio.weechatlog"; exit 1; }
joined=$(grep -F "has joined #lobby" "$chan" | head -1 | cut -f1)
said=$(grep -F "said before weechat came" "$chan" | tail -1 | cut -f1)
[[ "$said" < "$joined" ]] || { echo "FAIL: the played-back line shows $said, not its send time before the join ($joined)"; exit 1; }
own=$(grep -cF "hello from weechat" "$chan")
[ "$own" -eq 1 ] || { echo "FAIL: WeeChat showed its own message $own times"; exit 1; }
grep -q "^MSG lobby weeuser hello from weechat" "$work/wee-line.log" || { echo "FAIL: the line client did not get WeeChat's message"; exit 1; }
kill "$weechat" 2>/dev/null || true
wait "$weechat" 2>/dev/null || true
echo "PASS: WeeChat $version logged in with SASL SCRAM-SHA-256, showed the played-back line at its send time ($said, before the join at $joined), its own message once (capabilities: $caps), and the line client's answer"
}

weechat_tls_check() {
# --- WeeChat over TLS, verifying the certificate made above -------------------------
# WeeChat 3.8 says -ssl and ssl_verify; 4.0 renamed them -tls and tls_verify.
version=$(weechat-headless --version | head -1)
tls=ssl
if [ "$(printf '%s\n' 4.0 "$version" | sort -V | head -1)" = 4.0 ]; then tls=tls; fi
answerer 60 "/nick lineytls" "MSG lobby weetls hello over tls" "hello back over tls" \
  > "$work/weetls-line.log" &
wee_line=$!
weechat-headless --dir "$work/weechat-tls" -r "/set logger.file.flush_delay 0; \
/set logger.file.path $work/wtlogs; /set fifo.file.path $work/wtfifo; \
/set weechat.network.gnutls_ca_user $work/cert.pem; \
/server add miotls ${irc_tls_addr%:*}/${irc_tls_addr##*:} -$tls; \
/set irc.server.miotls.${tls}_verify on; /set irc.server.miotls.nicks weetls; \
/set irc.server.miotls.username weetlsuser; \
/set irc.server.miotls.autojoin #lobby; /connect miotls" > /dev/null 2>&1 &
weechat=$!
chan="$work/wtlogs/irc.miotls.#lobby.weechatlog"
srvlog="$work/wtlogs/irc.server.miotls.weechatlog"
wait_wlog "(~weetlsuse@" # USERLEN: ~ and 9 characters; the host a cloak
wait_wlog "hello back over tls" &
echo 'irc.server.miotls */msg #lobby hello over tls' > "$work/wtfifo"
wait $! || exit 1
wait "$wee_line" || true
grep -q "^MSG lobby weetls hello over tls" "$work/weetls-line.log" \
  || { echo "FAIL: the line client did not get WeeChat's message over TLS"; exit 1; }
echo "--- WeeChat over TLS, #lobby log:"
cat "$chan"
kill "$weechat" 2>/dev/null || true
wait "$weechat" 2>/dev/null || true
echo "PASS: WeeChat $version over TLS (-$tls, ${tls}_verify on with the test CA) chatted with a line client"
}

make_account() { # make_account NICK PASSWORD: registered from the line protocol
python3 - "$line_addr" "$1" "$2" <<'PY'
import socket, sys
host, port = sys.argv[1].rsplit(":", 1)
nick, password = sys.argv[2], sys.argv[3]
s = socket.create_connection((host, int(port)), timeout=20)
f = s.makefile("rw", newline="\n")
f.write(f"/nick {nick}\n/register {password}\n"); f.flush()
for line in f:
    if line.startswith("OK registered " + nick):
        break
    if line.startswith("ERR"):
        sys.exit("FAIL: registering the account: " + line)
f.write("/quit\n"); f.flush()
PY
}

sasl_check() {
# --- SASL: irssi logs in to an account made on the line protocol --------------------
make_account saslfan sasl-secret
tmux new-session -d -s "$session" -x 110 -y 24 "irssi --home=$work/irssi-sasl -n saslfan"
sleep 1
tmux send-keys -t "$session" \
  "/network add -sasl_mechanism PLAIN -sasl_username saslfan -sasl_password sasl-secret mio" Enter
tmux send-keys -t "$session" "/server add -network mio ${irc_addr%:*} ${irc_addr##*:}" Enter
tmux send-keys -t "$session" "/connect mio" Enter
wait_screen "You are now logged in as saslfan"
wait_screen "Welcome to the miochat IRC network"
answerer 10 "/whois saslfan" "OK whois saslfan" "/quit" > "$work/whois.log"
echo "--- irssi (SASL) screen:"
screen
grep -q "^OK whois saslfan irc [0-9]* [^ ]*@[^ ]* saslfan " "$work/whois.log" \
  || { echo "FAIL: /whois does not show the account"; cat "$work/whois.log"; exit 1; }
tmux kill-session -t "$session"
echo "PASS: irssi logged in with SASL PLAIN; /whois shows the account"
}

check plain
check tls
sasl_check
weechat_check
weechat_tls_check
