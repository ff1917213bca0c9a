// The browser side of protocol v1 (docs/protocol.md): one WebSocket and one RTCPeerConnection per lesson.
//
// The page always offers. Send m-lines carry what it publishes (camera, audio, screen); recvonly m-lines
// are slots the SFU fills and re-points without renegotiation (the lead's camera, audio, screen, and the
// called classroom's camera and audio; for the lead, the receiving classrooms' thumbnails). Events: joined,
// refused, lost, answer, slot, layout, lead, roster, preview, talkback, talkback_requested, hand, text, kicked,
// window_closed, closed, outage, media_stuck, connection.
//
// Losing the network is noticed within HEARTBEAT_LOST_MS: the page pings twice a second and the server answers;
// a socket that hears nothing for that long is given up (a pulled cable closes nothing for minutes) and
// `lost` fires with `outage: true`, so the page says so and reconnects at once. Media that stops while the
// socket lives (UDP blocked, ICE "disconnected") is renegotiated on the same socket without waiting for
// ICE to declare "failed".

const SLOTS_WATCH = [["video", "camera"], ["audio", "audio"], ["video", "screen"], ["video", "talkback_camera"], ["audio", "talkback_audio"]];
// the lead also sees up to PREVIEW_SLOTS receiving classrooms as thumbnails (the server's `preview` message
// says which classroom each preview m-line shows)
export const PREVIEW_SLOTS = 6;
const SLOTS_LEAD = [["video", "talkback_camera"], ["audio", "talkback_audio"],
  ...Array.from({ length: PREVIEW_SLOTS }, () => ["video", "preview"])];
const FINAL = new Set(["refused", "kicked", "window_closed"]);
export const HEARTBEAT_MS = 500; // `ping` this often (docs/protocol.md): each is answered by `pong`
const HEARTBEAT_TICK_MS = 100; // how often the page looks at its heartbeat
const HEARTBEAT_LOST_MS = 1300; // nothing heard for this long (two pongs missed and then some): the network is gone
const CONNECT_TIMEOUT_MS = 1500; // a socket not open by then is given up
const CONNECT_SPREAD_MS = 300; // while one hangs, another attempt starts this often
const MAX_ATTEMPTS = 4;
const ICE_DISCONNECTED_MS = 1500; // "disconnected" this long: renegotiate rather than wait for "failed"
const MEDIA_STUCK_MS = 10000; // an offer answered but no media path this long: tell the person, try again

export class LessonConnection extends EventTarget {
  constructor({ token, lessonId = null, publish = null }) {
    super();
    this.token = token;
    this.lessonId = lessonId;
    // {camera: MediaStreamTrack|null, audio: ..., screen: ..., later: promise of {kind: track}} or null. With
    // `later`, the m-lines are offered at once and the tracks attached when the camera has started, so a
    // classroom does not wait for its camera before it sees the teacher.
    this.publish = publish;
    this.ws = null;
    this.pc = null;
    this.role = null;
    this.joined = null;
    this.slots = new Map(); // mid -> slot name
    this.senders = {};
    this.ended = false; // refused, kicked, closed by the window: the page must not retry blindly
    this.nextId = 1;
    this.statsTimer = null;
    this.lastFrames = 0;
    this.lastStatsAt = 0;
    this.marks = { created: performance.now() }; // when each step happened: join time is a support question
    this.lastHeard = 0;
    this.timers = [];
    this.expectMedia = false; // the page says whether media should be flowing now (the lead is on air)
    this.lastPackets = -1;
    this.packetsAt = 0;
  }

  mark(name) { if (!(name in this.marks)) this.marks[name] = Math.round(performance.now()); }

  emit(type, detail = {}) { this.dispatchEvent(new CustomEvent(type, { detail })); }

  // Opens the socket. A connect that hangs (its SYN dropped on a dead link) gets company: another attempt
  // every CONNECT_SPREAD_MS, each given up after CONNECT_TIMEOUT_MS, the first to open wins. When the cable
  // comes back, a fresh attempt is never more than CONNECT_SPREAD_MS away (TCP's own retry waits 1 s, 3 s...).
  start() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const attempts = new Set();
    let spread = null;
    const settle = () => { clearInterval(spread); for (const other of attempts) { other.onclose = null; other.close(); } attempts.clear(); };
    const attempt = () => {
      if (attempts.size >= MAX_ATTEMPTS || this.ended || this.gaveUp) return;
      const ws = new WebSocket(`${scheme}://${location.host}/ws`);
      attempts.add(ws);
      const timer = setTimeout(() => { if (ws.readyState === WebSocket.CONNECTING) { attempts.delete(ws); ws.onclose = null; ws.close(); failed(0); } }, CONNECT_TIMEOUT_MS);
      ws.onopen = () => {
        clearTimeout(timer);
        attempts.delete(ws);
        settle();
        this.use(ws);
      };
      ws.onclose = (event) => { clearTimeout(timer); attempts.delete(ws); failed(event.code); };
    };
    // every attempt failed: the connection is lost (the page tries again)
    const failed = (code) => {
      if (attempts.size || this.ws) return;
      clearInterval(spread);
      if (!this.ended && !this.gaveUp) { this.gaveUp = true; this.emit("lost", { code, reason: "connect_failed" }); this.emit("closed", { code, ended: false }); }
    };
    this.cancelAttempts = settle;
    spread = setInterval(attempt, CONNECT_SPREAD_MS);
    attempt();
  }

  use(ws) {
    this.ws = ws;
    this.mark("ws_open");
    this.lastHeard = performance.now();
    const join = { token: this.token, client: { name: "live-classroom-web", agent: navigator.userAgent.slice(0, 120) } };
    if (this.lessonId) join.lesson_id = Number(this.lessonId);
    this.send("join", join);
    this.timers.push(setInterval(() => this.heartbeat(), HEARTBEAT_TICK_MS));
    ws.onmessage = (event) => { this.lastHeard = performance.now(); this.onMessage(JSON.parse(event.data)); };
    ws.onclose = (event) => {
      this.teardown();
      if (!this.ended) this.emit("lost", { code: event.code });
      this.emit("closed", { code: event.code, ended: this.ended });
    };
  }

  // every tenth of a second: ping twice a second, and give the socket up when nothing came back in time
  heartbeat() {
    const now = performance.now();
    const stalled = this.lastTick && now - this.lastTick > 4 * HEARTBEAT_TICK_MS; // this page itself was frozen (busy PC)
    this.lastTick = now;
    if (!this.lastPing || now - this.lastPing >= HEARTBEAT_MS) { this.lastPing = now; this.send("ping"); }
    // after a freeze of our own, messages that did arrive may still wait in the queue: judge at the next tick
    if (!stalled && now - this.lastHeard > HEARTBEAT_LOST_MS) { this.giveUp("heartbeat"); return; }
    this.checkMedia(now);
  }

  // The network is gone (or the server): drop this socket and peer without waiting for TCP or ICE to say so.
  giveUp(reason) {
    if (this.ended || this.gaveUp) return;
    this.gaveUp = true;
    this.mark(`gave_up_${reason}`);
    const ws = this.ws;
    if (ws) { ws.onclose = null; ws.onmessage = null; try { ws.close(); } catch { /* already closing */ } }
    this.teardown();
    this.emit("lost", { code: 0, outage: true, reason });
    this.emit("closed", { code: 0, ended: false });
  }

  teardown() {
    if (this.cancelAttempts) this.cancelAttempts();
    for (const timer of this.timers) clearInterval(timer);
    this.timers = [];
    this.closePeer();
  }

  // the peer connection and what watches it; the socket stays
  closePeer() {
    this.stopStats();
    clearTimeout(this.iceTimer);
    clearTimeout(this.stuckTimer);
    if (this.pc) { this.pc.close(); this.pc = null; }
  }

  // Media that stops while the socket is fine (UDP blocked, a NAT binding lost): a fresh offer on the same socket.
  checkMedia(now) {
    if (!this.pc || !this.answered || !this.expectMedia) { this.lastPackets = -1; return; }
    if (now - this.packetsAt < 500) return;
    this.packetsAt = now;
    const pc = this.pc;
    pc.getStats().then((stats) => {
      if (this.pc !== pc) return;
      let packets = 0;
      stats.forEach((s) => { if (s.type === "inbound-rtp") packets += s.packetsReceived || 0; });
      if (packets !== this.lastPackets) { this.lastPackets = packets; this.stalledSince = performance.now(); return; }
      if (performance.now() - this.stalledSince > 2500) this.renegotiate("media_stalled");
    }).catch(() => {});
  }

  renegotiate(reason) {
    if (this.ended || !this.joined || !this.ws || this.ws.readyState !== WebSocket.OPEN) return;
    this.mark(`renegotiate_${reason}`);
    this.emit("renegotiate", { reason });
    this.closePeer();
    this.lastPackets = -1;
    this.negotiate(this.joined.ice_servers || []).catch((err) => this.emit("error", { message: String(err) }));
  }

  send(type, fields = {}) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return 0;
    const id = this.nextId++;
    this.ws.send(JSON.stringify({ v: 1, type, id, ...fields }));
    return id;
  }

  close() {
    this.ended = true;
    this.send("leave");
    this.teardown();
    if (this.ws) this.ws.close(1000);
  }

  async onMessage(msg) {
    switch (msg.type) {
      case "joined":
        this.mark("joined");
        this.joined = msg;
        this.role = msg.role;
        this.emit("joined", msg);
        try { await this.negotiate(msg.ice_servers || []); } catch (err) { this.emit("error", { message: String(err) }); }
        break;
      case "answer": {
        if (!this.pc) break;
        this.mark("answer");
        const pc = this.pc;
        await pc.setRemoteDescription({ type: "answer", sdp: msg.sdp });
        this.answered = true;
        this.emit("answer", msg);
        this.startStats();
        // no media path in time (no usable candidate, a firewall): say so and try again
        clearTimeout(this.stuckTimer);
        this.stuckTimer = setTimeout(() => {
          if (this.pc === pc && pc.connectionState !== "connected") {
            this.emit("media_stuck", { state: pc.connectionState, ice: pc.iceConnectionState });
            this.renegotiate("media_stuck");
          }
        }, MEDIA_STUCK_MS);
        break;
      }
      case "error":
        if (msg.re === "join" || msg.code === "not_allowed_to_publish" || !this.joined) {
          this.ended = true;
          this.emit("refused", msg);
        } else {
          this.emit("error", msg);
        }
        break;
      case "kicked":
      case "window_closed":
        this.ended = true;
        this.emit(msg.type, msg);
        break;
      case "restart":
      case "move": // a technician moved this classroom's media to another node: reconnect at once
        this.emit("lost", { ...msg, reason: msg.type === "move" ? "moved" : msg.reason });
        break;
      default:
        this.emit(msg.type, msg);
    }
    if (FINAL.has(msg.type)) this.stopStats();
  }

  async negotiate(iceServers) {
    const pc = new RTCPeerConnection({ iceServers });
    this.pc = pc;
    this.answered = false;
    this.slots = new Map();
    const lines = []; // [transceiver, track kind or null, slot or null]
    const wanted = this.publish;
    const publishing = wanted && (this.role !== "observer" || wanted.force);
    const pub = publishing ? wanted : {};
    const line = (media, track, kind, slot) => {
      const tr = pc.addTransceiver(track || media, { direction: kind ? "sendonly" : "recvonly" });
      if (kind) this.senders[kind] = tr.sender;
      lines.push([tr, kind, slot]);
    };
    // What the page publishes goes on send-only m-lines, and every slot is a receive-only m-line of its own:
    // the SFU bundles all of them on one transport, so every slot plays, whatever its place in the offer.
    if (pub.camera !== undefined) line("video", pub.camera, "camera", null);
    if (pub.audio !== undefined) line("audio", pub.audio, "audio", null);
    if (this.role === "lead" && pub.screen !== undefined) line("video", pub.screen, "screen", null);
    for (const [media, slot] of this.role === "lead" ? SLOTS_LEAD : SLOTS_WATCH) line(media, null, null, slot);
    for (const [kind, track] of Object.entries(this.attached || {})) {
      if (track && this.senders[kind]) this.senders[kind].replaceTrack(track).catch(() => {});
    }
    if (pub.later) {
      pub.later.then(async (tracks) => {
        for (const [kind, track] of Object.entries(tracks || {})) if (track && this.pc === pc) await this.replaceTrack(kind, track);
      });
    }
    pc.ontrack = (event) => {
      this.mark("track");
      const slot = this.slots.get(event.transceiver.mid);
      if (slot) this.emit("slot", { slot, mid: event.transceiver.mid, track: event.track, stream: new MediaStream([event.track]) });
    };
    pc.onconnectionstatechange = () => {
      if (this.pc !== pc) return;
      this.mark(`pc_${pc.connectionState}`);
      this.emit("connection", { state: pc.connectionState });
      clearTimeout(this.iceTimer);
      if (pc.connectionState === "connected") clearTimeout(this.stuckTimer);
      if (pc.connectionState === "failed") this.renegotiate("ice_failed");
      if (pc.connectionState === "disconnected") {
        this.iceTimer = setTimeout(() => { if (this.pc === pc && pc.connectionState !== "connected") this.renegotiate("ice_disconnected"); }, ICE_DISCONNECTED_MS);
      }
    };
    // The offer goes at once and the candidates follow it (trickle ICE, docs/protocol.md §3): waiting for
    // gathering costs a reconnect a few hundred milliseconds. The SFU also learns the page's address from its
    // connectivity checks, so a candidate lost on the way costs nothing.
    let offered = false;
    const early = [];
    const trickle = (c) => this.send("candidate", c ? { candidate: c.candidate, sdpMid: c.sdpMid, sdpMLineIndex: c.sdpMLineIndex }
      : { candidate: "" });
    pc.addEventListener("icecandidate", (e) => {
      if (this.pc !== pc) return;
      if (!offered) early.push(e.candidate);
      else trickle(e.candidate);
    });
    await pc.setLocalDescription(await pc.createOffer());
    const slots = {};
    const tracks = {};
    for (const [tr, kind, slot] of lines) {
      if (kind) tracks[tr.mid] = kind;
      if (slot) { slots[tr.mid] = slot; this.slots.set(tr.mid, slot); }
    }
    const offer = { sdp: pc.localDescription.sdp, slots };
    if (Object.keys(tracks).length) offer.tracks = tracks;
    this.mark("offer");
    this.send("offer", offer);
    offered = true;
    for (const c of early) trickle(c);
  }

  // what the page publishes on a send m-line now (kept for a renegotiated connection, too)
  async replaceTrack(kind, track) {
    this.attached = { ...(this.attached || {}), [kind]: track };
    const sender = this.senders[kind];
    if (sender) await sender.replaceTrack(track);
  }

  startStats() {
    this.stopStats();
    this.statsTimer = setInterval(() => this.reportStats(), 2000);
  }

  stopStats() { if (this.statsTimer) clearInterval(this.statsTimer); this.statsTimer = null; }

  async reportStats() {
    if (!this.pc) return;
    const stats = await this.pc.getStats();
    let v = null;
    let pair = null;
    let bytes = 0;
    stats.forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "video" && (!v || (s.framesDecoded || 0) > (v.framesDecoded || 0))) v = s;
      if (s.type === "inbound-rtp") bytes += s.bytesReceived || 0;
      if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") pair = s;
    });
    if (!v) return;
    const now = performance.now();
    const frames = v.framesDecoded || 0;
    const seconds = this.lastStatsAt ? (now - this.lastStatsAt) / 1000 : 0;
    const fps = seconds ? (frames - this.lastFrames) / seconds : 0;
    const kbps = seconds && bytes >= this.lastBytes ? ((bytes - this.lastBytes) * 8) / 1000 / seconds : null;
    this.lastFrames = frames; this.lastStatsAt = now; this.lastBytes = bytes;
    const emitted = v.jitterBufferEmittedCount || 0;
    // what the monitoring's quality score reads (docs/monitoring.md): decoded and dropped frames, freezes,
    // jitter-buffer delay, bitrate and the bandwidth the browser estimates it has
    this.send("stats", { report: {
      frames_decoded: frames, frames_dropped: v.framesDropped ?? 0, fps: Math.round(fps * 10) / 10,
      width: v.frameWidth ?? null, height: v.frameHeight ?? null,
      packets_lost: v.packetsLost ?? 0, jitter_ms: v.jitter != null ? Math.round(v.jitter * 1000) : null,
      freeze_count: v.freezeCount ?? 0, freeze_s: v.totalFreezesDuration ?? 0,
      jitter_buffer_ms: emitted ? Math.round((v.jitterBufferDelay / emitted) * 1000) : null,
      bitrate_kbps: kbps != null ? Math.round(kbps) : null,
      available_kbps: pair?.availableIncomingBitrate != null ? Math.round(pair.availableIncomingBitrate / 1000) : null,
      rtt_ms: pair?.currentRoundTripTime != null ? Math.round(pair.currentRoundTripTime * 1000) : null,
    } });
  }
}

export function qualityClass(score) {
  if (score == null) return "";
  return score >= 3.5 ? "q-good" : score >= 2.5 ? "q-fair" : "q-bad";
}
