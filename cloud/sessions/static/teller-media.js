// Browser side of a desk grant: join the session's Janus VideoRoom over the Janus HTTP API.
//
//   import { joinRoom } from "./teller-media.js";
//   const call = await joinRoom(grant, await navigator.mediaDevices.getUserMedia({audio: true, video: true}),
//                               (stream) => { remoteVideo.srcObject = stream; });
//   ...
//   await call.leave();
//
// A fourth argument, `options`, may set `iceTransportPolicy: "relay"` (TURN only: for
// networks where a direct path to Janus must not be tried, and for testing the relay).
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
        const resp = await fetch(`${this.url}/${this.id}?maxev=10&token=${encodeURIComponent(this.token)}`);
        events = await resp.json();
      } catch (err) {
        if (!this.closed) await new Promise((r) => setTimeout(r, 1000));
        continue;
      }
      for (const ev of Array.isArray(events) ? events : [events]) {
        const resolve = this.waiters.get(ev.transaction);
        if (ev.janus === "event" && resolve) {
          this.waiters.delete(ev.transaction);
          resolve(ev);
        }
      }
    }
  }

  async attach() {
    const reply = await post(`${this.url}/${this.id}`, {
      janus: "attach", plugin: PLUGIN, transaction: tx(), token: this.token,
    });
    return reply.data.id;
  }

  // A plugin request; resolves with the synchronous reply or the event answering it.
  async message(handle, body, jsep) {
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

function gathered(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") resolve();
    });
  });
}

export async function joinRoom(grant, localStream, onRemoteStream, options = {}) {
  const session = await JanusSession.create(grant.janus_url, grant.token);
  const config = {
    iceServers: grant.ice_servers || [],
    iceTransportPolicy: options.iceTransportPolicy || "all",
  };

  // Publish: our camera and microphone as grant.feed. The filename names the recording
  // <room>-<feed>-<kind>-<mindex>.mjr, the contract cloud/media/recording.py reads.
  const publisher = new RTCPeerConnection(config);
  localStream.getTracks().forEach((t) => publisher.addTrack(t, localStream));
  await publisher.setLocalDescription(await publisher.createOffer());
  await gathered(publisher);
  const pubHandle = await session.attach();
  const joined = await session.message(pubHandle, {
    request: "joinandconfigure", ptype: "publisher", room: grant.room, id: grant.feed,
    display: grant.feed, filename: `${grant.room}-${grant.feed}`,
  }, { type: "offer", sdp: publisher.localDescription.sdp });
  await publisher.setRemoteDescription(joined.jsep);

  // Subscribe to the other side, waiting for it to publish.
  const subscriber = new RTCPeerConnection(config);
  const remote = new MediaStream();
  subscriber.addEventListener("track", (e) => {
    remote.addTrack(e.track);
    onRemoteStream(remote);
  });
  const subHandle = await session.attach();
  let attached;
  for (;;) {
    try {
      attached = await session.message(subHandle, {
        request: "join", ptype: "subscriber", room: grant.room, streams: [{ feed: grant.peer_feed }],
      });
      break;
    } catch (err) {
      if (err.code !== 428) throw err; // 428: the peer has not published yet
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  await subscriber.setRemoteDescription(attached.jsep);
  await subscriber.setLocalDescription(await subscriber.createAnswer());
  await gathered(subscriber);
  await session.message(subHandle, { request: "start" },
                        { type: "answer", sdp: subscriber.localDescription.sdp });

  return {
    publisher,
    subscriber,
    async leave() {
      publisher.close();
      subscriber.close();
      await session.destroy();
    },
  };
}
