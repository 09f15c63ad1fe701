import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MAX_LINE_BYTES, openRecordSource, type RawRecord, UnreadableFileError } from '../../../shared/import/records.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'oncekit-records-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

async function readAll(name: string, text: string | Buffer): Promise<{ records: RawRecord[]; consumed: number[]; total: number }> {
  const path = join(dir, name);
  writeFileSync(path, text);
  const source = await openRecordSource(path, name.endsWith('.csv') ? 'csv' : 'jsonl');
  const records: RawRecord[] = [];
  const consumed: number[] = [];
  try {
    for await (const batch of source.records()) {
      records.push(...batch);
      consumed.push(source.bytesConsumed());
    }
  } finally {
    source.close();
  }
  return { records, consumed, total: source.totalBytes };
}

describe('JSONL records', () => {
  it('splits lines by bytes, so a character cut by a read chunk stays whole; a BOM, CRLF and blank lines are handled', async () => {
    // The 64 KiB read chunk ends inside the two-byte é and the four-byte 🎉.
    const first = `\uFEFF{"a":"${'x'.repeat(65_536 - 10)}é🎉"}\r\n`;
    const text = `${first}\n{"b":"é"}\n  \n{"c":1}`;
    const { records, consumed, total } = await readAll('wide.jsonl', text);
    expect(records).toEqual([
      { recordNumber: 1, lineNumber: 1, line: first.slice(1, -2) },
      { recordNumber: 3, lineNumber: 3, line: '{"b":"é"}' },
      { recordNumber: 5, lineNumber: 5, line: '{"c":1}' },
    ]);
    // Bytes behind the records handed out grow to the whole file.
    expect(consumed).toEqual([...consumed].sort((a, b) => a - b));
    expect(consumed.at(-1)).toBe(total);
  });

  it('refuses a line longer than the limit', async () => {
    await expect(readAll('long.jsonl', `{"a":1}\n"${'x'.repeat(MAX_LINE_BYTES + 10)}"\n`)).rejects.toThrow(
      `line 2 is longer than ${MAX_LINE_BYTES} bytes`,
    );
    await expect(readAll('longer.jsonl', `"${'x'.repeat(3 * MAX_LINE_BYTES)}"`)).rejects.toThrow(UnreadableFileError);
  });
});

describe('CSV records', () => {
  it('numbers data rows from 1 after the header and says which line each starts on', async () => {
    const { records, consumed, total } = await readAll('rows.csv', 'a,b\r\n\r\n1,"two\r\nlines"\r\n3,4\r\n');
    expect(records).toEqual([
      { recordNumber: 1, lineNumber: 3, cells: ['1', 'two\r\nlines'] },
      { recordNumber: 2, lineNumber: 5, cells: ['3', '4'] },
    ]);
    expect(consumed.at(-1)).toBe(total);
  });

  it('reports a quote never closed as a fault of the last record, naming its line', async () => {
    const { records } = await readAll('open.csv', 'a,b\n1,2\n3,"open\nstill open\n');
    expect(records).toEqual([
      { recordNumber: 1, lineNumber: 2, cells: ['1', '2'] },
      {
        recordNumber: 2,
        lineNumber: 3,
        fault: 'line 3: a quoted field opened in this record is never closed (the file ends inside quotes)',
      },
    ]);
  });

  it('needs a header row', async () => {
    await expect(readAll('empty.csv', '\n\n')).rejects.toThrow('the CSV file is empty');
    await expect(readAll('header.csv', 'a,"b\n')).rejects.toThrow('the CSV header on line 1 opens a quote that is never closed');
  });
});
