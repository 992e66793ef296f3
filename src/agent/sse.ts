/**
 * A Server-Sent Events parser (the WHATWG "event stream interpretation"), enough for the change feed: text
 * arrives in chunks of any size, events end at a blank line, `data:` lines join with newlines, `id:` sets the
 * last event id (kept across events), comments and unknown fields are ignored. Pure.
 */

export interface SseEvent {
  /** `event:` (default `message`). */
  type: string;
  data: string;
  /** The last event id when the event was dispatched ('' when none was ever sent). */
  lastEventId: string;
}

export class SseParser {
  private buffer = '';
  private type = '';
  private data: string[] = [];
  private hasData = false;
  /** The id of the last event seen (`id:` fields persist, as in a browser's EventSource). */
  lastEventId = '';

  /** Feeds a chunk of text; returns the events it completed. */
  push(chunk: string): SseEvent[] {
    this.buffer += chunk;
    const events: SseEvent[] = [];
    for (;;) {
      const m = /\r\n|\r|\n/.exec(this.buffer);
      // A lone \r at the end may be the first half of \r\n: wait for the next chunk.
      if (!m || (m[0] === '\r' && m.index === this.buffer.length - 1)) break;
      const line = this.buffer.slice(0, m.index);
      this.buffer = this.buffer.slice(m.index + m[0].length);
      const event = this.line(line);
      if (event) events.push(event);
    }
    return events;
  }

  private line(line: string): SseEvent | undefined {
    if (line === '') return this.dispatch();
    if (line.startsWith(':')) return undefined;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') this.type = value;
    else if (field === 'data') {
      this.data.push(value);
      this.hasData = true;
    } else if (field === 'id' && !value.includes('\u0000')) this.lastEventId = value;
    return undefined;
  }

  private dispatch(): SseEvent | undefined {
    const event = this.hasData ? { type: this.type || 'message', data: this.data.join('\n'), lastEventId: this.lastEventId } : undefined;
    this.type = '';
    this.data = [];
    this.hasData = false;
    return event;
  }
}
