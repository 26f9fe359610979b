import { escapePlain, toDataUrl } from './escape.ts';
import { renderStrict, type Partials } from './strict-mustache.ts';

/** mustache.js section lambda: `{{#data_url}}text{{/data_url}}` calls inner(text) with `this` = current view. */
export type SectionLambda = () => (this: unknown, text: string) => string;

/**
 * `{{#data_url}}...{{/data_url}}` for Ignition file contents: the inner text is rendered strictly
 * with no escaping (it is file content, not JSON), then returned as an RFC 2397 `data:,` URL whose
 * percent-encoding is inert inside a JSON string. mustache.js gives a lambda only the innermost
 * view, so lookups fall back to the root view (the whole view of the template).
 */
export function dataUrlLambda(templateName: string, root: unknown, partials: Partials): SectionLambda {
  return () =>
    function (this: unknown, text: string): string {
      const parents = this === root ? [] : [root];
      const content = renderStrict(`${templateName} {{#data_url}}`, text, this, { escape: escapePlain, partials, parents });
      return toDataUrl(content);
    };
}
