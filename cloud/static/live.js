// The live feed: Server-Sent Events from /api/events. EventSource cannot send the bearer
// header, so each (re)connect first trades it for a one-use, 60 s ticket (POST
// /api/events/ticket). A cloud restart drops the stream and voids old tickets: the page
// then asks for a new ticket with backoff, and on every open tells its views to re-read the
// API, since events sent while it was away are gone.
import { post } from "./api.js";

export class LiveFeed {
  constructor({ onEvent, onOpen, onState }) {
    this.onEvent = onEvent;
    this.onOpen = onOpen;
    this.onState = onState;
    this.source = null;
    this.stopped = false;
    this.delay = 500;
    this.timer = null;
  }

  async start() {
    this.stopped = false;
    clearTimeout(this.timer);
    let ticket;
    try {
      ticket = (await post("/api/events/ticket")).ticket;
    } catch (error) {
      if (error.status === 401) { this.onState("unauthorized"); return; }
      this.retry();
      return;
    }
    if (this.stopped) return;
    const source = new EventSource(`/api/events?ticket=${encodeURIComponent(ticket)}`);
    this.source = source;
    source.addEventListener("hello", () => {
      this.delay = 500;
      this.onState("live");
      this.onOpen();
    });
    source.addEventListener("meter", (message) => {
      try { this.onEvent(JSON.parse(message.data)); } catch (error) { console.error(error); }
    });
    source.onerror = () => {
      // EventSource would retry the same, now used, ticket: take over instead.
      source.close();
      if (this.source === source) this.source = null;
      this.onState("down");
      this.retry();
    };
  }

  retry() {
    if (this.stopped) return;
    this.timer = setTimeout(() => this.start(), this.delay);
    this.delay = Math.min(this.delay * 2, 8000);
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.source) this.source.close();
    this.source = null;
  }
}
