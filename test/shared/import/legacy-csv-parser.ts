/**
 * The hand-written CSV parser that csv-parse replaced, kept only as the oracle of a test: the cells it read gave rows
 * their identities in every store that ever ran an import, so the new reader must read well-formed files the same way.
 */
const QUOTE = 0x22;
const COMMA = 0x2c;
const CR = 0x0d;
const LF = 0x0a;

enum State {
  FieldStart,
  Unquoted,
  Quoted,
  /** A `"` inside a quoted field: either the first of an escaped `""` or the closing quote. */
  QuoteInQuoted,
}

interface CsvEnd {
  readonly records: string[][];
  /** The file ended inside a quoted field; the last record holds everything after the opening quote. */
  readonly unterminatedQuote: boolean;
}

/**
 * RFC 4180 CSV, fed in chunks of any size: quoted fields with `""` escapes, commas and line breaks inside quotes,
 * CRLF, LF or CR line ends, a leading BOM. Blank lines are skipped. Lenient where files in the wild are: a stray quote
 * inside an unquoted field and text after a closing quote are kept as text. Memory is bounded by `maxRecordChars`.
 */
export class LegacyCsvParser {
  #state: State = State.FieldStart;
  #field = '';
  #record: string[] = [];
  /** Whether the current record has any content (tells a blank line from a record of one empty field). */
  #started = false;
  #skipLf = false;
  #first = true;
  #recordChars = 0;
  readonly #maxRecordChars: number;

  constructor(options: { readonly maxRecordChars?: number } = {}) {
    this.#maxRecordChars = options.maxRecordChars ?? 1_048_576;
  }

  /** Parses `chunk` and returns the records it completed. */
  push(chunk: string): string[][] {
    const out: string[][] = [];
    let text = chunk;
    if (this.#first && text.length > 0) {
      this.#first = false;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    const n = text.length;
    let i = 0;
    if (this.#skipLf && n > 0) {
      if (text.charCodeAt(0) === LF) i = 1;
      this.#skipLf = false;
    }
    // Text of the current field not yet copied into #field starts here (Unquoted and Quoted states).
    let start = i;
    for (; i < n; i += 1) {
      const c = text.charCodeAt(i);
      switch (this.#state) {
        case State.FieldStart:
          if (c === QUOTE) {
            this.#state = State.Quoted;
            this.#started = true;
            start = i + 1;
          } else if (c === COMMA) {
            this.#started = true;
            this.#endField();
          } else if (c === CR || c === LF) {
            this.#endRecord(out);
            i = this.#afterLineEnd(text, i, c);
          } else {
            this.#state = State.Unquoted;
            this.#started = true;
            start = i;
          }
          break;
        case State.Unquoted:
          if (c === COMMA) {
            this.#field += text.slice(start, i);
            this.#endField();
            this.#state = State.FieldStart;
          } else if (c === CR || c === LF) {
            this.#field += text.slice(start, i);
            this.#endRecord(out);
            this.#state = State.FieldStart;
            i = this.#afterLineEnd(text, i, c);
          }
          break;
        case State.Quoted:
          if (c === QUOTE) {
            this.#field += text.slice(start, i);
            this.#state = State.QuoteInQuoted;
          }
          break;
        case State.QuoteInQuoted:
          if (c === QUOTE) {
            this.#field += '"';
            this.#state = State.Quoted;
            start = i + 1;
          } else if (c === COMMA) {
            this.#endField();
            this.#state = State.FieldStart;
          } else if (c === CR || c === LF) {
            this.#endRecord(out);
            this.#state = State.FieldStart;
            i = this.#afterLineEnd(text, i, c);
          } else {
            this.#state = State.Unquoted;
            start = i;
          }
          break;
      }
    }
    if (this.#state === State.Unquoted || this.#state === State.Quoted) {
      this.#field += text.slice(start, n);
      if (this.#recordChars + this.#field.length > this.#maxRecordChars) throw new Error(`record longer than ${this.#maxRecordChars}`);
    }
    return out;
  }

  /** Completes the last record (a file need not end with a line break). */
  end(): CsvEnd {
    const unterminatedQuote = this.#state === State.Quoted;
    const out: string[][] = [];
    if (this.#started || this.#record.length > 0) this.#endRecord(out);
    this.#state = State.FieldStart;
    return { records: out, unterminatedQuote };
  }

  #endField(): void {
    this.#record.push(this.#field);
    this.#recordChars += this.#field.length;
    if (this.#recordChars > this.#maxRecordChars) throw new Error(`record longer than ${this.#maxRecordChars}`);
    this.#field = '';
  }

  #endRecord(out: string[][]): void {
    if (this.#started || this.#record.length > 0) {
      this.#endField();
      out.push(this.#record);
    }
    this.#record = [];
    this.#field = '';
    this.#started = false;
    this.#recordChars = 0;
  }

  /** After a line end at `i`: a CR followed by LF is one line end, also when the LF opens the next chunk. */
  #afterLineEnd(text: string, i: number, c: number): number {
    if (c !== CR) return i;
    if (i + 1 < text.length) return text.charCodeAt(i + 1) === LF ? i + 1 : i;
    this.#skipLf = true;
    return i;
  }
}
