/**
 * Stop strings on streamed text (OpenAI `stop`): generation ends when the text contains one, and
 * neither it nor anything after it is returned. While streaming, the tail that could still grow
 * into a stop string is held back, so a client never sees text that is later withdrawn.
 */
export class StopStringMatcher {
  #text = '';
  #released = 0;
  readonly #longest: number;

  constructor(private readonly stops: readonly string[]) {
    for (const s of stops) if (typeof s !== 'string' || s.length === 0) throw new Error(`stop strings must be non-empty strings, got ${JSON.stringify(s)}`);
    this.#longest = Math.max(0, ...stops.map((s) => s.length));
  }

  /** Adds decoded text; returns what may be released now, and whether a stop string was found. */
  feed(delta: string): { text: string; stopped: boolean } {
    const from = Math.max(0, this.#text.length - this.#longest + 1);
    this.#text += delta;
    if (this.stops.length === 0) return { text: this.release(this.#text.length), stopped: false };
    let cut = -1;
    for (const s of this.stops) {
      const at = this.#text.indexOf(s, from);
      if (at >= 0 && (cut < 0 || at < cut)) cut = at;
    }
    if (cut >= 0) {
      this.#text = this.#text.slice(0, cut);
      return { text: this.release(cut), stopped: true };
    }
    return { text: this.release(this.#text.length - this.heldBack()), stopped: false };
  }

  /** Releases whatever is held (generation ended for another reason). */
  finish(): string {
    return this.release(this.#text.length);
  }

  /** The length of the longest tail of the text that is a proper prefix of a stop string. */
  private heldBack(): number {
    for (let k = Math.min(this.#longest - 1, this.#text.length); k > 0; k--) {
      const tail = this.#text.slice(this.#text.length - k);
      if (this.stops.some((s) => s.startsWith(tail))) return k;
    }
    return 0;
  }

  private release(upTo: number): string {
    if (upTo <= this.#released) return '';
    const out = this.#text.slice(this.#released, upTo);
    this.#released = upTo;
    return out;
  }
}
