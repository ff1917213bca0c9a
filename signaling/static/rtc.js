// The browser side of protocol v1 (docs/protocol.md): one WebSocket and one RTCPeerConnection per lesson.
//
// The page always offers. Send m-lines carry what it publishes (camera, audio, screen); recvonly m-lines
// are slots the SFU fills and re-points without renegotiation (the lead's camera, audio, screen, and the
// called classroom's camera and audio; for the lead, the receiving classrooms' thumbnails). Events: joined,
// refused, lost, answer, slot, lead, roster, preview, talkback, talkback_requested, hand, text, kicked,
// window_closed, closed.

const SLOTS_WATCH = [["video", "camera"], ["audio", "audio"], ["video", "screen"], ["video", "talkback_camera"], ["audio", "talkback_audio"]];
// the lead also sees up to PREVIEW_SLOTS receiving classrooms as thumbnails (the server's `preview` message
// says which classroom each preview m-line shows)
export const PREVIEW_SLOTS = 6;
const SLOTS_LEAD = [["video", "talkback_camera"], ["audio", "talkback_audio"],
  ...Array.from({ length: PREVIEW_SLOTS }, () => ["video", "preview"])];
const FINAL = new Set(["refused", "kicked", "window_closed"]);

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
  }

  mark(name) { if (!(name in this.marks)) this.marks[name] = Math.round(performance.now()); }

  emit(type, detail = {}) { this.dispatchEvent(new CustomEvent(type, { detail })); }

  start() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/ws`);
    this.ws = ws;
    ws.onopen = () => {
      this.mark("ws_open");
      const join = { token: this.token, client: { name: "live-classroom-web", agent: navigator.userAgent.slice(0, 120) } };
      if (this.lessonId) join.lesson_id = Number(this.lessonId);
      this.send("join", join);
    };
    ws.onmessage = (event) => this.onMessage(JSON.parse(event.data));
    ws.onclose = (event) => {
      this.stopStats();
      if (this.pc) { this.pc.close(); this.pc = null; }
      if (!this.ended) this.emit("lost", { code: event.code });
      this.emit("closed", { code: event.code, ended: this.ended });
    };
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
    this.stopStats();
    if (this.ws) this.ws.close(1000);
    if (this.pc) { this.pc.close(); this.pc = null; }
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
      case "answer":
        this.mark("answer");
        await this.pc.setRemoteDescription({ type: "answer", sdp: msg.sdp });
        this.emit("answer", msg);
        this.startStats();
        break;
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
        this.emit("lost", msg);
        break;
      default:
        this.emit(msg.type, msg);
    }
    if (FINAL.has(msg.type)) this.stopStats();
  }

  async negotiate(iceServers) {
    const pc = new RTCPeerConnection({ iceServers });
    this.pc = pc;
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
      this.mark(`pc_${pc.connectionState}`);
      this.emit("connection", { state: pc.connectionState });
      if (pc.connectionState === "failed" && !this.ended) this.ws.close(4000, "media failed");
    };
    await pc.setLocalDescription(await pc.createOffer());
    // The SFU takes the candidates in the offer (it needs no trickled ones) and learns the page's public
    // address from its connectivity checks. Host candidates come within milliseconds, server-reflexive ones
    // (STUN) later: send once gathering completes, or 100 ms after the first candidate, at most after 2 s.
    await new Promise((resolve) => {
      if (pc.iceGatheringState === "complete") return resolve();
      const timer = setTimeout(resolve, 2000);
      let soon = null;
      const done = () => { clearTimeout(timer); clearTimeout(soon); resolve(); };
      pc.addEventListener("icegatheringstatechange", () => { if (pc.iceGatheringState === "complete") done(); });
      pc.addEventListener("icecandidate", (e) => { if (e.candidate && !soon) soon = setTimeout(done, 100); });
    });
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
  }

  async replaceTrack(kind, track) {
    const sender = this.senders[kind];
    if (sender) await sender.replaceTrack(track);
  }

  startStats() {
    this.stopStats();
    this.statsTimer = setInterval(() => this.reportStats(), 2000);
  }

  stopStats() { if (this.statsTimer) clearInterval(this.statsTimer); this.statsTimer = null; }

  // What the page sees of the lead's camera: sent to the server for the teacher's quality display.
  async videoStats() {
    if (!this.pc) return null;
    const stats = await this.pc.getStats();
    let best = null;
    stats.forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "video" && (!best || (s.framesDecoded || 0) > (best.framesDecoded || 0))) best = s;
    });
    return best;
  }

  async reportStats() {
    const v = await this.videoStats();
    if (!v) return;
    const now = performance.now();
    const frames = v.framesDecoded || 0;
    const fps = this.lastStatsAt ? ((frames - this.lastFrames) * 1000) / (now - this.lastStatsAt) : 0;
    this.lastFrames = frames; this.lastStatsAt = now;
    this.send("stats", { report: {
      frames_decoded: frames, fps: Math.round(fps * 10) / 10, width: v.frameWidth ?? null, height: v.frameHeight ?? null,
      packets_lost: v.packetsLost ?? 0, jitter_ms: v.jitter != null ? Math.round(v.jitter * 1000) : null,
      freeze_count: v.freezeCount ?? 0,
    } });
  }
}

export function qualityClass(score) {
  if (score == null) return "";
  return score >= 80 ? "q-good" : score >= 50 ? "q-fair" : "q-bad";
}
