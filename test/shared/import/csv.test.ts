import { describe, expect, it } from 'vitest';
import { CsvParser, CsvRecordTooLongError, csvField } from '../../../shared/import/csv.js';
import { csvValue } from '../../../shared/import/rows.js';

function parse(chunks: readonly string[]): { records: string[][]; unterminatedQuote: boolean } {
  const parser = new CsvParser();
  const records = chunks.flatMap((chunk) => parser.push(chunk));
  const end = parser.end();
  return { records: [...records, ...end.records], unterminatedQuote: end.unterminatedQuote };
}

const TEXT = '\uFEFFa,b,c\r\n"x, y","say ""hi""",\r\n\r\n"multi\r\nline",2,3\n"",,z\rlast,"q"';
const EXPECTED = [
  ['a', 'b', 'c'],
  ['x, y', 'say "hi"', ''],
  ['multi\r\nline', '2', '3'],
  ['', '', 'z'],
  ['last', 'q'],
];

describe('CsvParser', () => {
  it('reads quotes, escaped quotes, commas and line breaks inside quotes, CRLF, LF and CR, a BOM, and skips blank lines', () => {
    expect(parse([TEXT])).toEqual({ records: EXPECTED, unterminatedQuote: false });
  });

  it('gives the same records however the text is cut into chunks', () => {
    for (let cut = 0; cut <= TEXT.length; cut += 1) {
      expect(parse([TEXT.slice(0, cut), TEXT.slice(cut)]).records, `cut at ${cut}`).toEqual(EXPECTED);
    }
    expect(parse([...TEXT]).records).toEqual(EXPECTED);
  });

  it('keeps a stray quote inside an unquoted field and text after a closing quote', () => {
    expect(parse(['ab"c,"d"e\n']).records).toEqual([['ab"c', 'de']]);
  });

  it('says when the file ends inside quotes', () => {
    expect(parse(['a,"open\nstill open'])).toEqual({ records: [['a', 'open\nstill open']], unterminatedQuote: true });
  });

  it('refuses a record longer than the limit instead of growing without bound', () => {
    const parser = new CsvParser({ maxRecordChars: 100 });
    expect(() => {
      for (let i = 0; i < 20; i += 1) parser.push(`"${'x'.repeat(10)}`);
    }).toThrow(CsvRecordTooLongError);
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
