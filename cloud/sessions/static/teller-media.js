// Browser side of a desk grant: join the session's Janus VideoRoom over the Janus HTTP API.
//
//   import { joinRoom } from "./teller-media.js";
//   const call = await joinRoom(grant, await navigator.mediaDevices.getUserMedia({audio: true, video: true}),
//                               (stream) => { remoteVideo.srcObject = stream; });
//   ...
//   await call.leave();
//
// With a fourth argument `{ onData(text) }` the call also carries the VideoRoom data channel
// (publish with data, subscribe with data): `call.send(text)` goes to the peer's subscription,
// `onData` gets the peer's text messages. Without it nothing changes (media only).
// `{ signal }` (an AbortSignal) gives up waiting for a peer that never publishes: the
// Janus session is destroyed and joinRoom rejects. When the peer unpublishes (a terminal
// republishing after a network change) the subscription is made again once it is back;
// `{ onPeer(state) }` hears "gone" and "back", and `onRemoteStream` gets the new stream.
// `{ iceTransportPolicy: "relay" }` uses TURN only (networks where a direct path to Janus
// must not be tried, and the relay test).
//
// `grant` is the desk's connect message (janus_url, token, room, feed, peer_feed,
// ice_servers). The browser publishes as `feed` and subscribes to `peer_feed` once that
// participant's media is up (Janus answers 428 "no such feed" until then, so it retries).
// Candidates go in the SDP (no trickle), like the aiortc clients in the tests.

const PLUGIN = "janus.plugin.videoroom";

function tx() {
  return Math.random().toString(36).slice(2, 14);
}

class JanusSession {
  constructor(url, token, id) {
    this.url = url;
    this.token = token;
    this.id = id;
    this.waiters = new Map(); // transaction -> resolve
    this.closed = false;
    this.flushing = null; // set while a broken poll may wait in Janus (see flush)
    this.poll();
  }

  static async create(url, token) {
    const reply = await post(url, { janus: "create", transaction: tx(), token });
    return new JanusSession(url, token, reply.data.id);
  }

  async poll() {
    // The long poll doubles as the keepalive Janus needs within its session timeout.
    while (!this.closed) {
      let events;
      try {
        if (this.flushing) await this.flush();
        const resp = await fetch(`${this.url}/${this.id}?maxev=10&token=${encodeURIComponent(this.token)}`);
        if (!resp.ok) throw new Error(`long poll: HTTP ${resp.status}`); // a gate in takeover
        events = await resp.json();
      } catch (err) {
        if (err instanceof JanusError && [403, 458].includes(err.code)) {
          this.closed = true; // the flush heard the session is gone or our token revoked
          this.flushed();
          continue;
        }
        // The poll broke on its way (the cloud's signalling gate died with its replica): it
        // may still wait inside Janus, which would hand it our next event. Flush it first.
        this.flushing = this.flushing || deferred();
        if (!this.closed) await new Promise((r) => setTimeout(r, 1000));
        continue;
      }
      if (events && events.janus === "error") {
        // 458: the session is gone; 403: our token was revoked (the desk ended the call).
        // Either way nothing more will come: stop, rather than ask again in a tight loop.
        if ([403, 458].includes(events.error && events.error.code)) this.closed = true;
        else await new Promise((r) => setTimeout(r, 1000));
        continue;
      }
      for (const ev of Array.isArray(events) ? events : [events]) {
        const resolve = this.waiters.get(ev.transaction);
        if (ev.janus === "event" && resolve) {
          this.waiters.delete(ev.transaction);
          resolve(ev);
        } else if (this.onEvent && ev.janus !== "keepalive") {
          this.onEvent(ev); // room notifications: who published, who left
        }
      }
    }
  }

  // A throwaway handle's detach is an event: Janus hands it to a dead poll of ours if one is
  // still waiting there (else it comes to us and is ignored), so later events reach us.
  // Plugin requests wait for it (as janus_client's JanusSession._flush).
  async flush() {
    const handle = await this.attach();
    await post(`${this.url}/${this.id}/${handle}`, { janus: "detach", transaction: tx(), token: this.token });
    this.flushed();
  }

  flushed() {
    if (this.flushing) this.flushing.resolve();
    this.flushing = null;
  }

  async attach() {
    const reply = await post(`${this.url}/${this.id}`, {
      janus: "attach", plugin: PLUGIN, transaction: tx(), token: this.token,
    });
    return reply.data.id;
  }

  // A plugin request; resolves with the synchronous reply or the event answering it.
  async message(handle, body, jsep) {
    if (this.flushing) await this.flushing.promise; // else its answer may go to a dead poll
    const transaction = tx();
    const event = new Promise((resolve) => this.waiters.set(transaction, resolve));
    const msg = { janus: "message", transaction, token: this.token, body };
    if (jsep) msg.jsep = jsep;
    const reply = await post(`${this.url}/${this.id}/${handle}`, msg);
    const answer = reply.janus === "ack" ? await event : reply;
    const data = answer.plugindata.data;
    if (data.error_code) throw new JanusError(data.error_code, data.error);
    return { data, jsep: answer.jsep };
  }

  async detach(handle) {
    await post(`${this.url}/${this.id}/${handle}`, { janus: "detach", transaction: tx(), token: this.token })
      .catch(() => {});
  }

  async destroy() {
    this.closed = true;
    await post(`${this.url}/${this.id}`, { janus: "destroy", transaction: tx(), token: this.token })
      .catch(() => {});
  }
}

class JanusError extends Error {
  constructor(code, reason) {
    super(`janus ${code}: ${reason}`);
    this.code = code;
  }
}

async function post(url, body) {
  const resp = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const reply = await resp.json();
  if (reply.janus === "error") throw new JanusError(reply.error.code, reply.error.reason);
  return reply;
}

function deferred() {
  let resolve;
  const promise = new Promise((r) => { resolve = r; });
  return { promise, resolve };
}

function gathered(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") resolve();
    });
  });
}

// Our outgoing data channel: messages sent before it opens wait, in order.
function outgoing(publisher) {
  const channel = publisher.createDataChannel("cuntong", { ordered: true });
  const waiting = [];
  channel.addEventListener("open", () => waiting.splice(0).forEach((m) => channel.send(m)));
  return {
    channel,
    send(text) {
      if (channel.readyState === "open") channel.send(text);
      else if (channel.readyState === "connecting") waiting.push(text);
      else throw new Error(`data channel ${channel.readyState}`);
    },
  };
}

export async function joinRoom(grant, localStream, onRemoteStream, options) {
  const onData = options && options.onData;
  const signal = options && options.signal;
  const onPeer = options && options.onPeer;
  const policy = (options && options.iceTransportPolicy) || "all";
  const session = await JanusSession.create(grant.janus_url, grant.token);
  try {
    return await join(session, grant, localStream, onRemoteStream, onData, signal, onPeer, policy);
  } catch (err) {
    await session.destroy(); // stops the long poll too (a revoked token cannot destroy)
    throw err;
  }
}

async function join(session, grant, localStream, onRemoteStream, onData, signal, onPeer, policy) {
  const config = { iceServers: grant.ice_servers || [], iceTransportPolicy: policy };

  // Publish: our camera and microphone as grant.feed. The filename names the recording
  // <room>-<feed>-<kind>-<mindex>.mjr, the contract cloud/media/recording.py reads.
  const publisher = new RTCPeerConnection(config);
  localStream.getTracks().forEach((t) => publisher.addTrack(t, localStream));
  // Janus relays what a publisher sends on its data channel to the feed's subscribers.
  const data = onData ? outgoing(publisher) : null;
  await publisher.setLocalDescription(await publisher.createOffer());
  await gathered(publisher);
  const pubHandle = await session.attach();
  const joined = await session.message(pubHandle, {
    request: "joinandconfigure", ptype: "publisher", room: grant.room, id: grant.feed,
    display: grant.feed, filename: `${grant.room}-${grant.feed}`,
    // the room admits only its own participants: the desk's token for it and its PIN
    token: grant.token, pin: grant.pin,
  }, { type: "offer", sdp: publisher.localDescription.sdp });
  await publisher.setRemoteDescription(joined.jsep);

  // Subscribe to the other side, waiting for it to publish. When the peer unpublishes
  // (a terminal whose network changed republishes into the same room with the same grant)
  // the subscription is dropped and made again once the peer is back.
  let closed = false;
  const aborted = () => closed || !!(signal && signal.aborted);
  let current;
  try {
    current = await subscribe(session, grant, config, onRemoteStream, onData, aborted);
  } catch (err) {
    publisher.close();
    throw err;
  }
  let renewing = null;
  session.onEvent = (ev) => {
    const d = (ev.janus === "event" && ev.sender === pubHandle && ev.plugindata && ev.plugindata.data) || {};
    if (String(d.unpublished) !== grant.peer_feed && String(d.leaving) !== grant.peer_feed) return;
    if (renewing || closed) return;
    if (onPeer) onPeer("gone");
    const old = current;
    renewing = (async () => {
      old.pc.close();
      await session.detach(old.handle);
      current = await subscribe(session, grant, config, onRemoteStream, onData, aborted);
      if (onPeer) onPeer("back");
    })().catch((err) => {
      if (!closed) console.warn("resubscribe:", err);
    }).finally(() => { renewing = null; });
  };
  if (current === null) {
    publisher.close();
    throw new Error("join abandoned: the peer never published");
  }

  return {
    publisher,
    get subscriber() {
      return current.pc;
    },
    dataChannel: data && data.channel,
    send(text) {
      if (!data) throw new Error("joined without a data channel");
      data.send(text);
    },
    async leave() {
      closed = true;
      publisher.close();
      if (current) current.pc.close();
      await session.destroy();
    },
  };
}

// One subscription to grant.peer_feed: resolves {pc, handle}, or null if `stop()` turned
// true while the peer had not published yet (Janus answers 428 "no such feed" until then).
async function subscribe(session, grant, config, onRemoteStream, onData, stop) {
  const pc = new RTCPeerConnection(config);
  const remote = new MediaStream();
  pc.addEventListener("track", (e) => {
    remote.addTrack(e.track);
    onRemoteStream(remote);
  });
  if (onData) {
    // Janus relays data to a subscriber only once the subscriber has opened a channel
    // itself (janus.js does the same); it then sends on the channel with the publisher's
    // label: ours when the labels match, else one it opens.
    const listen = (channel) => channel.addEventListener("message", (m) => {
      if (typeof m.data === "string") onData(m.data);
    });
    listen(pc.createDataChannel("cuntong"));
    pc.addEventListener("datachannel", (e) => listen(e.channel));
  }
  const handle = await session.attach();
  let attached;
  for (;;) {
    try {
      attached = await session.message(handle, {
        request: "join", ptype: "subscriber", room: grant.room, streams: [{ feed: grant.peer_feed }],
        token: grant.token, pin: grant.pin,
      });
      break;
    } catch (err) {
      if (err.code !== 428) { // 428: the peer has not published yet
        pc.close();
        throw err;
      }
      await new Promise((r) => setTimeout(r, 500));
      if (stop()) {
        pc.close();
        return null;
      }
    }
  }
  await pc.setRemoteDescription(attached.jsep);
  await pc.setLocalDescription(await pc.createAnswer());
  await gathered(pc);
  await session.message(handle, { request: "start" }, { type: "answer", sdp: pc.localDescription.sdp });
  return { pc, handle };
}

// A third party's view of a call (a supervisor listening in): subscribe to grant.peer_feed
// (the customer) and every feed in grant.watch (the teller), publish nothing.
// onRemoteStream(feed, stream) is called per feed; `{ signal }` gives up waiting for feeds.
export async function watchRoom(grant, onRemoteStream, options) {
  const signal = options && options.signal;
  const config = { iceServers: grant.ice_servers || [] };
  const session = await JanusSession.create(grant.janus_url, grant.token);
  let closed = false;
  const stop = () => closed || !!(signal && signal.aborted);
  const subs = [];
  try {
    for (const feed of [grant.peer_feed, ...(grant.watch || [])]) {
      const sub = await subscribe(session, { ...grant, peer_feed: feed }, config,
        (stream) => onRemoteStream(feed, stream), null, stop);
      if (sub === null) throw new Error(`watch abandoned: ${feed} never published`);
      subs.push(sub);
    }
  } catch (err) {
    subs.forEach((s) => s.pc.close());
    await session.destroy();
    throw err;
  }
  return {
    subscribers: subs.map((s) => s.pc),
    async leave() {
      closed = true;
      subs.forEach((s) => s.pc.close());
      await session.destroy();
    },
  };
}
