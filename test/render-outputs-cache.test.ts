import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createOutputs } from '../src/render/outputs.ts';
import { loadTemplates, type Renderer } from '../src/render/renderer.ts';
import { sampleConfig, sampleHost, TEMPLATE_DIRS } from './fixtures/render/sample.ts';

/** The real renderer, counting its cloud-config renders. */
async function countingRenderer(): Promise<{ renderer: Renderer; renders: () => number }> {
  const real = await loadTemplates(TEMPLATE_DIRS);
  let n = 0;
  const renderer: Renderer = { ...real, cloudConfig: (view) => (n++, real.cloudConfig(view)) };
  return { renderer, renders: () => n };
}

describe('rendered documents are cached per host version', () => {
  it('renders a host once however often it asks, and again once the host changed', async () => {
    const { renderer, renders } = await countingRenderer();
    const outputs = createOutputs({ renderer, config: sampleConfig(), mayuUrl: 'http://10.0.0.1:4080', version: 'test', useIgnition: false, reportTokenOf: () => 'token' });
    const host = sampleHost();
    const first = outputs.cloudConfig(host);
    assert.equal(outputs.cloudConfig(structuredClone(host)), first, 'an equal host gets the same bytes');
    assert.equal(renders(), 1);
    const changed = { ...structuredClone(host), Hostname: 'other-name' };
    const second = outputs.cloudConfig(changed);
    assert.equal(renders(), 2);
    assert.notEqual(second, first);
    assert.match(second, /other-name/);
  });
});
