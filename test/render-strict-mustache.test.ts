import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { dataUrlLambda } from '../src/render/data-url.ts';
import { escapeDnsmasq, escapeJson, escapePlain } from '../src/render/escape.ts';
import { RenderError } from '../src/render/render-error.ts';
import { renderStrict } from '../src/render/strict-mustache.ts';

const view = {
  name: 'n1',
  empty: '',
  nothing: null,
  off: false,
  zero: 0,
  list: [{ a: 'x' }, { a: 'y' }],
  none: [] as unknown[],
  obj: { inner: { deep: 'd' } },
  top: 'T',
};

function renderError(fn: () => unknown): RenderError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof RenderError, `expected RenderError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a RenderError');
}

describe('strict mustache: missing keys name template and tag', () => {
  const cases: { title: string; template: string; partials?: Record<string, string>; tag: string; partial?: string; line?: number }[] = [
    { title: 'escaped variable', template: 'a {{nme}} b', tag: '{{nme}}' },
    { title: 'triple mustache', template: '{{{missing}}}', tag: '{{{missing}}}' },
    { title: 'ampersand', template: '{{& missing}}', tag: '{{& missing}}' },
    { title: 'section', template: '{{#missing}}x{{/missing}}', tag: '{{#missing}}' },
    { title: 'inverted section', template: '{{^missing}}x{{/missing}}', tag: '{{^missing}}' },
    { title: 'dotted name', template: '{{obj.inner.dep}}', tag: '{{obj.inner.dep}}' },
    { title: 'inside a list section, line 2', template: 'first\n{{#list}}{{a}}{{b}}{{/list}}', tag: '{{b}}', line: 2 },
    { title: 'inside an object section', template: '{{#obj.inner}}{{deep}}{{shallow}}{{/obj.inner}}', tag: '{{shallow}}' },
    { title: 'inside a false section', template: '{{#off}}{{typo}}{{/off}}', tag: '{{typo}}' },
    { title: 'inside a partial', template: 'x\n{{> net}}', partials: { net: 'ok {{name}}\n{{#list}}{{ab}}{{/list}}' }, tag: '{{ab}}', partial: 'net', line: 2 },
    { title: 'inside a nested partial', template: '{{> outer}}', partials: { outer: '{{> inner}}', inner: '{{gone}}' }, tag: '{{gone}}', partial: 'outer > inner' },
    { title: 'unknown partial', template: '{{> nope}}', partials: { net: '' }, tag: '{{> nope}}' },
    { title: 'inherited property is not a view key', template: '{{constructor}}', tag: '{{constructor}}' },
  ];
  for (const c of cases) {
    it(c.title, () => {
      const err = renderError(() => renderStrict('t.conf', c.template, view, { escape: escapePlain, partials: c.partials ?? {} }));
      assert.equal(err.template, 't.conf');
      assert.equal(err.tag, c.tag);
      assert.equal(err.partial, c.partial);
      assert.match(err.message, /template "t\.conf"/);
      assert.ok(err.message.includes(c.tag), err.message);
      if (c.partial) assert.ok(err.message.includes(`partial "${c.partial.split(' > ').join('" > "')}"`), err.message);
      if (c.line) assert.match(err.message, new RegExp(`line ${c.line}:`));
    });
  }
});

describe('strict mustache: values that are not missing', () => {
  const cases: { template: string; expected: string }[] = [
    { template: '[{{empty}}][{{nothing}}][{{off}}][{{zero}}]', expected: '[][][false][0]' },
    { template: '{{#nothing}}{{whatever}}{{/nothing}}{{#none}}{{whatever}}{{/none}}ok', expected: 'ok' },
    { template: '{{#list}}{{a}}{{top}}{{/list}}', expected: 'xTyT' },
    { template: '{{#obj}}{{inner.deep}}{{name}}{{/obj}}', expected: 'dn1' },
    { template: '{{^none}}empty{{/none}}{{^list}}no{{/list}}', expected: 'empty' },
    { template: '{{#name}}{{.}}{{/name}}', expected: 'n1' },
    { template: '{{! a comment with {{ braces }}rest', expected: 'rest' },
  ];
  for (const c of cases) {
    it(JSON.stringify(c.template), () => {
      assert.equal(renderStrict('t', c.template, view, { escape: escapePlain }), c.expected);
    });
  }
});

describe('strict mustache: other errors', () => {
  it('a list or object rendered as a value is an error', () => {
    const err = renderError(() => renderStrict('t', '{{list}}', view, { escape: escapePlain }));
    assert.equal(err.tag, '{{list}}');
    assert.match(err.message, /a list/);
  });
  it('a syntax error names the template', () => {
    const err = renderError(() => renderStrict('broken.yaml', '{{#a}}never closed', view, { escape: escapePlain }));
    assert.equal(err.template, 'broken.yaml');
    assert.match(err.message, /broken\.yaml.*syntax error.*Unclosed section/);
  });
  it('a syntax error in a partial names the partial', () => {
    const err = renderError(() => renderStrict('t', '{{> p}}', view, { escape: escapePlain, partials: { p: '{{/x}}' } }));
    assert.equal(err.partial, 'p');
  });
  it('a value the escape refuses names the tag', () => {
    const err = renderError(() => renderStrict('d.conf', 'x={{#list}}{{a}}{{/list}}{{bad}}', { ...view, bad: 'a\nb' }, { escape: escapeDnsmasq }));
    assert.equal(err.tag, '{{bad}}');
    assert.match(err.message, /dnsmasq/);
  });
  it('set-delimiter tags are refused', () => {
    assert.throws(() => renderStrict('t', '{{=<% %>=}}<% name %>', view, { escape: escapePlain }), RenderError);
  });
  it('never uses HTML escaping', () => {
    assert.equal(renderStrict('t', '{{u}}', { u: 'http://a/b?c&d<e>' }, { escape: escapePlain }), 'http://a/b?c&d<e>');
  });
});

describe('data_url lambda', () => {
  it('renders its inner text unescaped into a percent-encoded data: URL, looking up the root view from sections', () => {
    const root: Record<string, unknown> = { top: 'a"b', items: [{ name: 'x\ny' }] };
    root['data_url'] = dataUrlLambda('t.json', root, { p: '[{{top}}]' });
    const out = renderStrict('t.json', '{{#items}}"{{#data_url}}{{name}}-{{top}}{{> p}}\n{{/data_url}}",{{/items}}', root, { escape: escapeJson, partials: { p: '[{{top}}]' } });
    assert.match(out, /^"data:,[A-Za-z0-9%\-_.~]*",$/);
    assert.equal(decodeURIComponent(out.slice('"data:,'.length, -2)), 'x\ny-a"b[a"b]\n');
  });
  it('is strict inside', () => {
    const root: Record<string, unknown> = {};
    root['data_url'] = dataUrlLambda('t.json', root, {});
    const err = renderError(() => renderStrict('t.json', '"{{#data_url}}{{typo}}{{/data_url}}"', root, { escape: escapeJson }));
    assert.equal(err.tag, '{{typo}}');
  });
});
