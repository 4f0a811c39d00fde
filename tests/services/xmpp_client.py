#!/usr/bin/python3
"""A tiny XMPP client for tests/services/prosody.sh (Debian's python3-slixmpp).

    xmpp_client.py PORT JID PASSWORD ACTION...

Actions, run in order after login:
    roster-add JID NAME      add JID to the roster under NAME
    send JID TEXT            send a chat message
    expect-roster JID NAME   the roster has JID under NAME
    expect-message TEXT      a message containing TEXT arrives (offline delivery) within 10 s
    expect-mam TEXT          the message archive (XEP-0313) holds a message containing TEXT
Exit code 0 when every action succeeded, 1 otherwise (also on a failed login).
"""
import asyncio
import logging
import sys

import slixmpp


class Client(slixmpp.ClientXMPP):
    def __init__(self, jid, password, actions):
        super().__init__(jid, password)
        self.actions = actions
        self.ok = False
        self.received = []
        self.got_message = asyncio.Event()
        self["feature_mechanisms"].unencrypted_plain = True
        self.register_plugin("xep_0030")
        self.register_plugin("xep_0313")
        self.add_event_handler("session_start", self.start)
        self.add_event_handler("message", self.on_message)
        self.add_event_handler("failed_auth", lambda _: self.fail("login failed"))

    def fail(self, why):
        print("FAIL:", why, file=sys.stderr)
        self.disconnect()

    def on_message(self, msg):
        if msg["body"]:
            self.received.append(msg["body"])
            self.got_message.set()

    async def start(self, _):
        try:
            await self.get_roster()
            self.send_presence()
            a = list(self.actions)
            while a:
                op = a.pop(0)
                if op == "roster-add":
                    jid, name = a.pop(0), a.pop(0)
                    await self.update_roster(jid, name=name)
                elif op == "send":
                    jid, text = a.pop(0), a.pop(0)
                    self.send_message(mto=jid, mbody=text, mtype="chat")
                elif op == "expect-roster":
                    jid, name = a.pop(0), a.pop(0)
                    have = self.client_roster[jid]["name"] if jid in self.client_roster else None
                    if have != name:
                        return self.fail(f"roster: {jid} is {have!r}, expected {name!r}")
                elif op == "expect-message":
                    text = a.pop(0)
                    loop = asyncio.get_event_loop()
                    deadline = loop.time() + 10
                    while not any(text in b for b in self.received):
                        self.got_message.clear()
                        try:
                            await asyncio.wait_for(self.got_message.wait(), deadline - loop.time())
                        except asyncio.TimeoutError:
                            return self.fail(f"no message with {text!r}; got {self.received!r}")
                elif op == "expect-mam":
                    text = a.pop(0)
                    bodies = []
                    async for rsm in self["xep_0313"].retrieve(iterator=True):
                        for r in rsm["mam"]["results"]:
                            bodies.append(r["mam_result"]["forwarded"]["stanza"]["body"])
                    if not any(text in b for b in bodies):
                        return self.fail(f"archive has no {text!r}: {bodies!r}")
                else:
                    return self.fail(f"unknown action {op}")
                print("ok:", op)
            await asyncio.sleep(0.5)  # let the last stanzas leave
            self.ok = True
        except Exception as e:  # noqa: BLE001
            return self.fail(repr(e))
        self.disconnect()


def main():
    port, jid, password, *actions = sys.argv[1:]
    logging.basicConfig(level=logging.ERROR)
    c = Client(jid, password, actions)
    c.connect(address=("127.0.0.1", int(port)), force_starttls=False, disable_starttls=True)
    c.loop.run_until_complete(asyncio.wait_for(c.disconnected, 30))
    sys.exit(0 if c.ok else 1)


if __name__ == "__main__":
    main()
