/**
 * HTML by tagged template: every interpolated value is escaped unless it is an {@link Html}
 * fragment (made by {@link html} itself or, for trusted markup, by {@link raw}). Arrays are joined;
 * null, undefined and false render nothing.
 */

/** A fragment of HTML that is already safe to insert as is. */
export class Html {
  constructor(readonly value: string) {}
  toString(): string {
    return this.value;
  }
}

const ESCAPES: Readonly<Record<string, string>> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

/** `text` with `& < > " '` replaced by entities: safe in element content and quoted attributes. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

/** Marks trusted markup as safe; never pass it anything that came from a request or the store. */
export function raw(markup: string): Html {
  return new Html(markup);
}

/** A value an {@link html} template accepts. */
export type Interpolation = Html | string | number | boolean | null | undefined | readonly Interpolation[];

function render(value: Interpolation): string {
  if (value === null || value === undefined || value === false) return '';
  if (value instanceof Html) return value.value;
  if (Array.isArray(value)) return value.map((v: Interpolation) => render(v)).join('');
  return escapeHtml(String(value));
}

/**
 * Builds an {@link Html} fragment, escaping each interpolation.
 *
 * @example
 * html`<td>${name}</td>`; // name "<b>" renders as &lt;b&gt;
 */
export function html(strings: TemplateStringsArray, ...values: readonly Interpolation[]): Html {
  let out = strings[0]!;
  for (let i = 0; i < values.length; i++) out += render(values[i]!) + strings[i + 1]!;
  return new Html(out);
}
