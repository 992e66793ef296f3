/** Calls `onLine` with every JSON line a stream writes (a child's stdout of winston JSON lines); other lines are skipped. */
export function onJsonLines(stream: NodeJS.ReadableStream, onLine: (line: Record<string, unknown>) => void): void {
  let buffered = '';
  stream.on('data', (chunk: Buffer) => {
    buffered += chunk.toString('utf8');
    let i;
    while ((i = buffered.indexOf('\n')) >= 0) {
      const text = buffered.slice(0, i);
      buffered = buffered.slice(i + 1);
      let line: Record<string, unknown>;
      try {
        line = JSON.parse(text) as Record<string, unknown>;
      } catch {
        continue;
      }
      onLine(line);
    }
  });
}
