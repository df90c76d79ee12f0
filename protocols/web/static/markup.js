'use strict';
/* The markup subset of JSON-IM's rich_text feature (docs/jsonim-web.md), rendered as
   DOM nodes: text nodes, <br>, <strong>, <em> and <a> with http, https or mailto links.
   Nothing is ever parsed as HTML. The grammar is protocols/jsonim/markup.py's. */
var ImgatewayMarkup = (function () {
  var ESCAPABLE = '\\*_[]()`';
  var LINK = /\[([^\[\]\n]{1,500})\]\(((?:https?:\/\/|mailto:)[^\s()]{1,2000})\)/y;
  var URL = /https?:\/\/[^\s<>"'()\[\]]+/y;
  var WORD = /^[\p{L}\p{N}]$/u;
  var SPACE = /^\s$/;

  function isWord(c) { return c !== undefined && WORD.test(c); }
  function isSpace(c) { return c !== undefined && SPACE.test(c); }

  function opens(s, pos, marker) {
    var after = pos + marker.length;
    if (after >= s.length || isSpace(s[after]) || s[after] === '*') { return false; }
    if (marker === '**') { return true; }
    var before = pos ? s[pos - 1] : ' ';
    return !(isWord(before) || before === '*' || before === '_' || s[after] === '_');
  }

  function closers(s, marker) {
    var found = [];
    var start = 0;
    for (;;) {
      var q = s.indexOf(marker, start);
      if (q < 0) { return found; }
      start = q + 1;
      var before = q ? s[q - 1] : ' ';
      if (isSpace(before) || before === '\\' || before === '*') { continue; }
      if (marker === '**') { found.push(q); start = q + 2; continue; }
      var after = q + 1 < s.length ? s[q + 1] : ' ';
      if (!(isWord(after) || after === '*' || after === '_' || before === '_')) { found.push(q); }
    }
  }

  function firstAtLeast(list, value) {
    var lo = 0, hi = list.length;
    while (lo < hi) {
      var mid = (lo + hi) >> 1;
      if (list[mid] < value) { lo = mid + 1; } else { hi = mid; }
    }
    return lo;
  }

  function inline(s, openMarkers) {
    var out = [];
    var buf = '';
    var found = {};
    var pos = 0;
    var m;
    function flush() { if (buf) { out.push(['text', buf]); buf = ''; } }
    while (pos < s.length) {
      var c = s[pos];
      if (c === '\\' && pos + 1 < s.length && ESCAPABLE.indexOf(s[pos + 1]) >= 0) {
        buf += s[pos + 1];
        pos += 2;
        continue;
      }
      if (c === '[') {
        LINK.lastIndex = pos;
        m = LINK.exec(s);
        if (m) {
          flush();
          out.push(['a', m[2], m[1]]);
          pos = LINK.lastIndex;
          continue;
        }
      } else if (c === '*' || c === '_') {
        var marker = s.startsWith('**', pos) ? '**' : c;
        if (openMarkers.indexOf(marker) < 0 && opens(s, pos, marker)) {
          if (!(marker in found)) { found[marker] = closers(s, marker); }
          var list = found[marker];
          var at = firstAtLeast(list, pos + marker.length + 1);
          if (at < list.length) {
            var end = list[at];
            flush();
            var inner = inline(s.slice(pos + marker.length, end), openMarkers.concat([marker]));
            out.push([marker === '**' ? 'b' : 'i', inner]);
            pos = end + marker.length;
            continue;
          }
        }
        buf += marker;
        pos += marker.length;
        continue;
      } else if (c === 'h' && (pos === 0 || !isWord(s[pos - 1]))) {
        URL.lastIndex = pos;
        m = URL.exec(s);
        if (m) {
          var url = m[0].replace(/[.,;:!?]+$/, '');
          if (!url.endsWith('://')) {
            flush();
            out.push(['a', url, url]);
            pos += url.length;
            continue;
          }
        }
      }
      buf += c;
      pos += 1;
    }
    flush();
    return out;
  }

  /* The markup's nodes, line by line: ['text', s], ['br'], ['b', nodes], ['i', nodes],
     ['a', url, label]. */
  function parse(markup) {
    var nodes = [];
    markup.split('\n').forEach(function (line, i) {
      if (i) { nodes.push(['br']); }
      nodes.push.apply(nodes, inline(line, []));
    });
    return nodes;
  }

  function build(nodes, doc, into) {
    nodes.forEach(function (node) {
      var el;
      switch (node[0]) {
        case 'text': into.appendChild(doc.createTextNode(node[1])); return;
        case 'br': into.appendChild(doc.createElement('br')); return;
        case 'a':
          el = doc.createElement('a');
          el.href = node[1];
          el.target = '_blank';
          el.rel = 'noopener noreferrer nofollow';
          el.textContent = node[2];
          into.appendChild(el);
          return;
        default:
          el = doc.createElement(node[0] === 'b' ? 'strong' : 'em');
          build(node[1], doc, el);
          into.appendChild(el);
      }
    });
    return into;
  }

  /* A fragment showing ``markup`` formatted. */
  function render(markup, doc) {
    return build(parse(markup), doc, doc.createDocumentFragment());
  }

  /* A fragment showing plain ``text`` as it is, with its line breaks and bare links. */
  function plain(text, doc) {
    var nodes = [];
    text.split('\n').forEach(function (line, i) {
      if (i) { nodes.push(['br']); }
      var pos = 0;
      var start = 0;
      while (pos < line.length) {
        if (line[pos] === 'h' && (pos === 0 || !isWord(line[pos - 1]))) {
          URL.lastIndex = pos;
          var m = URL.exec(line);
          if (m) {
            var url = m[0].replace(/[.,;:!?]+$/, '');
            if (!url.endsWith('://')) {
              if (pos > start) { nodes.push(['text', line.slice(start, pos)]); }
              nodes.push(['a', url, url]);
              pos += url.length;
              start = pos;
              continue;
            }
          }
        }
        pos += 1;
      }
      if (start < line.length) { nodes.push(['text', line.slice(start)]); }
    });
    return build(nodes, doc, doc.createDocumentFragment());
  }

  return {parse: parse, render: render, plain: plain};
})();
