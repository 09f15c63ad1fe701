import { Readable } from 'node:stream';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type CsvItem, CsvRecordTooLongError, csvField, readCsv } from '../../../shared/import/csv.js';
import { csvValue } from '../../../shared/import/rows.js';
import { LegacyCsvParser } from './legacy-csv-parser.js';

/** Reads `chunks` (the file cut at those places) and returns every item, in order. */
async function read(chunks: readonly (string | Buffer)[], maxRecordBytes?: number): Promise<CsvItem[]> {
  const file = Readable.from(chunks.map((chunk) => (typeof chunk === 'string' ? Buffer.from(chunk) : chunk)));
  const items: CsvItem[] = [];
  for await (const batch of readCsv(file, maxRecordBytes === undefined ? {} : { maxRecordBytes })) items.push(...batch);
  return items;
}

const cellsOf = (items: readonly CsvItem[]): string[][] => items.flatMap((item) => (item.kind === 'record' ? [item.cells] : []));

/** The text cut into byte chunks at the given places. */
function cut(text: string, at: readonly number[]): Buffer[] {
  const bytes = Buffer.from(text);
  const points = [...new Set(at.map((point) => Math.min(point, bytes.length)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let start = 0;
  for (const point of [...points, bytes.length]) {
    if (point > start) out.push(bytes.subarray(start, point));
    start = point;
  }
  return out;
}

const TEXT = '\uFEFFa,b,c\r\n"x, y","say ""hi""",\r\n\r\n"multi\r\nline",2,3\n"",,z\rlast,"q"';
const EXPECTED = [
  ['a', 'b', 'c'],
  ['x, y', 'say "hi"', ''],
  ['multi\r\nline', '2', '3'],
  ['', '', 'z'],
  ['last', 'q'],
];

describe('readCsv', () => {
  it('reads quotes, escaped quotes, commas and line breaks inside quotes, CRLF, LF and CR, a BOM, and skips blank lines', async () => {
    const items = await read([TEXT]);
    expect(cellsOf(items)).toEqual(EXPECTED);
    // The line each record starts on (the blank line counts, the quoted line break too), and where it ends in bytes.
    expect(items.map((item) => item.line)).toEqual([1, 2, 4, 6, 7]);
    expect(items.at(-1)?.endByte).toBe(Buffer.byteLength(TEXT));
  });

  it('gives the same records however the bytes are cut into chunks, inside a character too', async () => {
    const bytes = Buffer.byteLength(TEXT);
    for (let at = 0; at <= bytes; at += 1) expect(cellsOf(await read(cut(TEXT, [at]))), `cut at ${at}`).toEqual(EXPECTED);
    expect(
      cellsOf(
        await read(
          cut(
            TEXT,
            Array.from({ length: bytes }, (_, index) => index),
          ),
        ),
      ),
    ).toEqual(EXPECTED);
    const wide = 'a,b\n"é🎉\r\nx",ü\n';
    const width = Buffer.byteLength(wide);
    for (let at = 0; at <= width; at += 1) {
      expect(cellsOf(await read(cut(wide, [at]))), `cut at ${at}`).toEqual([
        ['a', 'b'],
        ['é🎉\r\nx', 'ü'],
      ]);
    }
  });

  it('keeps a stray quote inside an unquoted field, and text after a closing quote, as written', async () => {
    expect(cellsOf(await read(['ab"c,"d"e,5" screen\n']))).toEqual([['ab"c', '"d"e', '5" screen']]);
  });

  it('says where a quote that is never closed opens, after the records before it', async () => {
    expect(await read(['a,b\n\n"x",y\n\nc,"open\nstill open'])).toEqual([
      { kind: 'record', cells: ['a', 'b'], line: 1, endByte: 4 },
      { kind: 'record', cells: ['x', 'y'], line: 3, endByte: 11 },
      { kind: 'unterminated', line: 5, endByte: expect.any(Number) },
    ]);
  });

  it('refuses a record longer than the limit instead of growing without bound', async () => {
    await expect(read(['a,b\n', `"${'x'.repeat(10)}`.repeat(20)], 100)).rejects.toThrow(CsvRecordTooLongError);
    await expect(read(['a,b\n', `"${'x'.repeat(10)}`.repeat(20)], 100)).rejects.toThrow(/near line 2 is longer than 100 bytes/);
  });

  it('reads every well-formed file as the hand-written reader it replaced did, however it is cut', async () => {
    const cell = fc.string({ unit: fc.constantFrom('a', 'b', ' ', ',', '"', '\r', '\n', 'é', '🎉', '0'), maxLength: 6 });
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(cell, { minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 8 }),
        fc.array(fc.constantFrom('\n', '\r\n', '\r', '\n\n', '\r\n\r\n'), { minLength: 8, maxLength: 8 }),
        fc.boolean(),
        fc.boolean(),
        fc.array(fc.nat({ max: 200 }), { maxLength: 5 }),
        async (rows, ends, bom, lastEnd, at) => {
          const body = rows.map((row, index) => row.map(csvField).join(',') + (index < rows.length - 1 || lastEnd ? ends[index] : ''));
          const text = (bom ? '\uFEFF' : '') + body.join('');
          const legacy = new LegacyCsvParser();
          const expected = [...legacy.push(text), ...legacy.end().records];
          expect(cellsOf(await read(cut(text, at)))).toEqual(expected);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('writes fields that need it quoted, with quotes doubled', () => {
    expect(['plain', 'a,b', 'say "hi"', 'two\nlines', 42, null].map(csvField)).toEqual([
      'plain',
      '"a,b"',
      '"say ""hi"""',
      '"two\nlines"',
      '42',
      '',
    ]);
  });
});

describe('csvValue', () => {
  it.each([
    ['19.90', 19.9],
    ['-5', -5],
    ['0', 0],
    ['true', true],
    ['false', false],
    ['007', '007'],
    ['1e3', '1e3'],
    ['12345678901234567890', '12345678901234567890'],
    ['USD', 'USD'],
    [' 5', ' 5'],
  ])('%j → %j', (cell, value) => {
    expect(csvValue(cell)).toBe(value);
  });
});
