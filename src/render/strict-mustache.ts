import Mustache from 'mustache';
import { EscapeError, type Escape } from './escape.ts';
import { RenderError } from './render-error.ts';

// Mustache renders a missing key as "" — in a config file that is a silent, wrong answer. Before
// rendering, walk the parsed tokens with a context stack that follows mustache.js 4.2's own lookup
// rules and throw a RenderError naming the template and the tag of the first missing key.
// null / false / "" / [] are values, not missing: only undefined is an error.

export type Partials = Readonly<Record<string, string>>;

export interface StrictRenderOptions {
  /** Escape of the output format (see escape.ts); never mustache's HTML escaping. */
  escape: Escape;
  /** Partials by name, for {{> name}}. */
  partials?: Partials;
  /** Outer views, outermost first, looked up after `view` (used by section lambdas). */
  parents?: readonly unknown[];
}

/** mustache.js token: [type, value, start, end, (children, closeIndex) | (indent, tagIndex, standalone)] */
type Token = [string, string, number, number, ...unknown[]];

/** Partials that include themselves stop here instead of overflowing the stack. */
const MAX_PARTIAL_DEPTH = 32;

interface Place {
  template: string;
  /** Chain of partial names from the template to the current source, e.g. ["network"]. */
  partials: string[];
  source: string;
}

function describe(place: Place): string {
  const chain = place.partials.length ? `, partial ${place.partials.map((p) => `"${p}"`).join(' > ')}` : '';
  return `template "${place.template}"${chain}`;
}

function tagError(place: Place, token: Token, problem: string, cause?: unknown): RenderError {
  const tag = place.source.slice(token[2], token[3]);
  const line = place.source.slice(0, token[2]).split('\n').length;
  return new RenderError(`${describe(place)}, line ${line}: ${tag} ${problem}`, {
    template: place.template,
    tag,
    ...(place.partials.length ? { partial: place.partials.join(' > ') } : {}),
  }, { cause });
}

/** Parses (and caches, in mustache's writer) a template; a syntax error names the template. */
export function parseStrict(templateName: string, template: string, partialChain: string[] = []): Token[] {
  try {
    return Mustache.parse(template) as unknown as Token[];
  } catch (err) {
    const place = { template: templateName, partials: partialChain, source: template };
    throw new RenderError(`${describe(place)}: mustache syntax error: ${(err as Error).message}`, {
      template: templateName,
      ...(partialChain.length ? { partial: partialChain.join(' > ') } : {}),
    }, { cause: err });
  }
}

function isOwn(obj: unknown, key: string): boolean {
  return obj != null && Object.hasOwn(Object(obj), key);
}

/**
 * mustache.js 4.2 Context.lookup: try the whole (dotted) name in each view from the innermost out;
 * the first view where the last segment exists wins. Inherited properties (toString, constructor)
 * count as missing here, which is stricter than mustache and never wanted in a view.
 */
function lookup(stack: readonly unknown[], name: string): { found: boolean; value: unknown } {
  const top = stack[stack.length - 1];
  if (name === '.') return { found: true, value: top };
  const names = name.indexOf('.') > 0 ? name.split('.') : [name];
  for (let i = stack.length - 1; i >= 0; i--) {
    let value: unknown = stack[i];
    let hit = false;
    let own = true;
    for (let k = 0; value != null && k < names.length; k++) {
      const key = names[k]!;
      const exists = names.length > 1 ? (typeof value === 'object' ? key in value : isOwn(value, key)) : typeof value === 'object' && key in value;
      if (k === names.length - 1) hit = exists;
      own &&= isOwn(value, key);
      value = (value as Record<string, unknown>)[key];
    }
    if (hit) {
      if (!own) return { found: false, value: undefined };
      // mustache calls a function value with the innermost view as `this`.
      if (typeof value === 'function') value = (value as (this: unknown) => unknown).call(top);
      return { found: true, value };
    }
  }
  return { found: false, value: undefined };
}

function check(tokens: Token[], stack: readonly unknown[], place: Place, opts: StrictRenderOptions): void {
  const resolve = (token: Token): unknown => {
    const { found, value } = lookup(stack, token[1]);
    if (!found || value === undefined) throw tagError(place, token, 'is not defined in the view');
    return value;
  };
  for (const token of tokens) {
    const children = token[4] as Token[];
    switch (token[0]) {
      case 'text':
      case '!':
        break;
      case '=':
        // A section lambda receives raw template text and re-parses it with the default tags.
        throw tagError(place, token, 'changes the delimiters, which is not supported');
      case 'name':
      case '&': {
        const value = resolve(token);
        if (value === null) break;
        if (typeof value === 'object' || typeof value === 'function') {
          throw tagError(place, token, `is ${Array.isArray(value) ? 'a list' : 'an object'}, not a single value: use a section`);
        }
        if (token[0] === 'name') {
          try {
            opts.escape(value);
          } catch (err) {
            if (err instanceof EscapeError) throw tagError(place, token, `has a value that cannot be written here: ${err.message}`, err);
            throw err;
          }
        }
        break;
      }
      case '#': {
        const value = resolve(token);
        if (Array.isArray(value)) {
          for (const item of value) check(children, [...stack, item], place, opts);
        } else if (value && (typeof value === 'object' || typeof value === 'string' || typeof value === 'number')) {
          check(children, [...stack, value], place, opts);
        } else if (value === null) {
          // Not rendered, and what the section would push is unknown: nothing to check.
        } else {
          // true, false, "" and 0 push nothing; lambdas get the text: check it in this context.
          check(children, stack, place, opts);
        }
        break;
      }
      case '^':
        resolve(token);
        // An inverted section never pushes a view, so its content resolves in this context.
        check(children, stack, place, opts);
        break;
      case '>': {
        const name = token[1];
        const source = opts.partials && Object.hasOwn(opts.partials, name) ? opts.partials[name] : undefined;
        if (source === undefined) {
          const known = Object.keys(opts.partials ?? {});
          throw tagError(place, token, `names an unknown partial (known: ${known.length ? known.join(', ') : 'none'})`);
        }
        if (place.partials.length >= MAX_PARTIAL_DEPTH) throw tagError(place, token, `nests partials deeper than ${MAX_PARTIAL_DEPTH}`);
        const chain = [...place.partials, name];
        check(parseStrict(place.template, source, chain), stack, { template: place.template, partials: chain, source }, opts);
        break;
      }
      default:
        throw tagError(place, token, `has an unknown token type "${token[0]}"`);
    }
  }
}

/**
 * Renders `template` with `view` into a string, after checking that every tag resolves.
 * Throws RenderError (naming template, partial and tag) instead of rendering a wrong document.
 */
export function renderStrict(templateName: string, template: string, view: unknown, opts: StrictRenderOptions): string {
  const stack = [...(opts.parents ?? []), view];
  const place: Place = { template: templateName, partials: [], source: template };
  check(parseStrict(templateName, template), stack, place, opts);

  let context: Mustache.Context | undefined;
  for (const v of stack) context = context ? context.push(v) : new Mustache.Context(v);
  try {
    return Mustache.render(template, context, { ...opts.partials }, { escape: opts.escape });
  } catch (err) {
    if (err instanceof RenderError) throw err;
    throw new RenderError(`${describe(place)}: ${(err as Error).message}`, { template: templateName }, { cause: err });
  }
}
