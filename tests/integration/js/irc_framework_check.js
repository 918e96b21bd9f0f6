// irc-framework (the library behind Kiwi IRC) against miochat: one client over TCP
// and one over WebSocket (text.ircv3.net), each asking for every capability the
// server offers. They meet in #ifw and check what the library parsed: each other's
// message with its server-time, nick!~user@host, WHO and WHOIS, the topic and who
// set it (333), NAMES. Prints one JSON line; exits 0 only if every check held.
// Usage: node irc_framework_check.js IRC_PORT WEB_PORT
'use strict';
if (typeof WebSocket === 'undefined') {
    globalThis.WebSocket = require('ws');
}
const IRC = require('irc-framework');
const WsTransport = require('irc-framework/src/transports/websocket');

const [ircPort, webPort] = process.argv.slice(2).map(Number);
const CAPS = ['away-notify', 'batch', 'cap-notify', 'echo-message', 'invite-notify',
    'message-tags', 'multi-prefix', 'sasl', 'server-time', 'account-notify', 'account-tag',
    'extended-join', 'draft/account-registration', 'draft/chathistory'];
const failures = [];
const seen = {};
const check = (ok, what) => { if (!ok) failures.push(what); };

function client(nick, username, ws) {
    const c = new IRC.Client();
    c.requestCap(CAPS.filter((cap) => cap !== 'sasl'));
    const options = {
        host: '127.0.0.1', port: ws ? webPort : ircPort, nick, username,
        gecos: 'Framework ' + nick, auto_reconnect: false, enable_echomessage: true,
    };
    if (ws) {
        Object.assign(options, { transport: WsTransport, path: '/ws', websocket_protocol: 'text.ircv3.net' });
    }
    c.connect(options);
    return c;
}

const tcp = client('ifwtcp', 'tcpuser', false);
const web = client('ifwws', 'wsuser', true);
let joined = 0;
for (const [c, other] of [[tcp, 'ifwws'], [web, 'ifwtcp']]) {
    c.on('registered', () => {
        const enabled = c.network.cap.enabled;
        const missing = CAPS.filter((cap) => cap !== 'sasl' && !enabled.includes(cap));
        check(missing.length === 0, `${c.user.nick}: caps not enabled: ${missing}`);
        c.join('#ifw');
    });
    c.on('join', (e) => {
        if (e.nick === c.user.nick && ++joined === 2) {
            // Both are in: the operator (the first in) sets the topic, each says hello.
            tcp.raw('TOPIC #ifw :framework topic');
            web.raw('TOPIC #ifw :framework topic');
            tcp.say('#ifw', 'hello from ifwtcp');
            web.say('#ifw', 'hello from ifwws');
        }
    });
    c.on('privmsg', (e) => {
        if (e.nick !== other) return;
        seen[`${c.user.nick} got`] = { from: `${e.nick}!${e.ident}@${e.hostname}`, text: e.message, time: e.time };
        check(typeof e.time === 'number' && Math.abs(Date.now() - e.time) < 60000,
            `${c.user.nick}: server-time on the message`);
        c.who(other, (who) => {
            const u = (who.users || [])[0] || {};
            seen[`${c.user.nick} who`] = `${u.nick}!${u.ident}@${u.hostname}`;
            c.whois(other, (w) => {
                seen[`${c.user.nick} whois`] = `${w.nick}!${w.ident}@${w.hostname}`;
                c.raw('TOPIC #ifw');
            });
        });
    });
    c.on('topic', (e) => {
        if (e.nick) seen[`${c.user.nick} topic`] = `${e.topic} by ${e.nick}`;
    });
    c.on('topicsetby', (e) => {
        seen[`${c.user.nick} topicsetby`] = `${e.nick}!${e.ident}@${e.hostname}`;
        finish();
    });
}

let done = 0;
function finish() {
    if (++done < 2) return;
    const expect = (key, want) => check(seen[key] === want, `${key}: ${JSON.stringify(seen[key])} != ${want}`);
    for (const [me, other, user] of [['ifwtcp', 'ifwws', 'wsuser'], ['ifwws', 'ifwtcp', 'tcpuser']]) {
        const got = seen[`${me} got`] || {};
        check(got.from === `${other}!~${user}@127.0.0.1` && got.text === `hello from ${other}`,
            `${me} got ${JSON.stringify(got)}`);
        expect(`${me} who`, `${other}!~${user}@127.0.0.1`);
        expect(`${me} whois`, `${other}!~${user}@127.0.0.1`);
        check(/^ifw(tcp|ws)!~(tcp|ws)user@127\.0\.0\.1$/.test(seen[`${me} topicsetby`]),
            `${me}: 333 names the setter: ${seen[`${me} topicsetby`]}`);
    }
    console.log(JSON.stringify({ failures, seen }));
    tcp.quit('done');
    web.quit('done');
    setTimeout(() => process.exit(failures.length ? 1 : 0), 200);
}

setTimeout(() => {
    console.log(JSON.stringify({ failures: failures.concat(['timed out']), seen }));
    process.exit(1);
}, 20000);
