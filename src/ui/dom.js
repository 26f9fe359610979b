// Elements from DOM calls only: text always goes in as text, never as HTML.

const SVG = 'http://www.w3.org/2000/svg';

/**
 * @param {string} tag
 * @param {Record<string, any>} [attrs]
 * @param {(Node | string | null | undefined | false)[]} children
 * @returns {HTMLElement}
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  for (const c of children) if (c !== null && c !== undefined && c !== false) el.append(c);
  return el;
}

/**
 * @param {string} tag
 * @param {Record<string, string | number | undefined>} [attrs]
 * @param {(Node | null | undefined)[]} children
 * @returns {SVGElement}
 */
export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  setAttrs(el, attrs);
  for (const c of children) if (c) el.append(c);
  return el;
}

/** @param {Element} el @param {Record<string, any>} attrs */
function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), /** @type {any} */ (v));
    else el.setAttribute(k, v === true ? '' : String(v));
  }
}

/**
 * Horizontal bars, one per [label, count]; `kind` names the CSS class of the bars (state-… colours).
 * @param {string} title
 * @param {[string, number][]} rows
 * @param {string} kind "state" or "profile"
 */
export function barChart(title, rows, kind) {
  const max = Math.max(1, ...rows.map(([, n]) => n));
  const rowH = 22;
  const labelW = 110;
  const barW = 220;
  const svg = s('svg', { class: 'bars', role: 'img', 'aria-label': title, viewBox: `0 0 ${labelW + barW + 50} ${rows.length * rowH + 4}`, width: labelW + barW + 50, height: rows.length * rowH + 4 });
  rows.forEach(([label, n], i) => {
    const y = i * rowH + 2;
    const t = s('text', { x: labelW - 6, y: y + rowH / 2 + 4, 'text-anchor': 'end', class: 'bar-label' });
    t.textContent = label;
    const bar = s('rect', { x: labelW, y: y + 3, height: rowH - 6, width: Math.round((n / max) * barW), rx: 2, class: `bar ${kind}-${label}` });
    const title_ = s('title');
    title_.textContent = `${label}: ${n}`;
    bar.append(title_);
    const v = s('text', { x: labelW + Math.round((n / max) * barW) + 6, y: y + rowH / 2 + 4, class: 'bar-value' });
    v.textContent = String(n);
    svg.append(t, bar, v);
  });
  return svg;
}
