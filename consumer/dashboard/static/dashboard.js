// The canvas-progress dashboard: plain JavaScript, no library, nothing fetched from anywhere but this server.
//
// Every figure comes from an authenticated API request (the token the user gives, kept in sessionStorage:
// this tab only). Text from the data (course names, ids) is only ever set as textContent or an attribute,
// never parsed as HTML. Views are picked by the URL's hash: #/ (accounts), #/accounts/ID, #/courses/ID.
"use strict";

(function () {
  const TOKEN_KEY = "canvas-progress-token";
  const PER_PAGE = 50;
  const API = "/api/v1";
  const view = document.getElementById("view");
  const statusLine = document.getElementById("status");
  const crumbs = document.getElementById("crumbs");
  const signIn = document.getElementById("sign-in");
  const signOut = document.getElementById("sign-out");
  const freshnessLine = document.getElementById("freshness");
  let generation = 0; // a newer navigation makes older requests' answers stale
  let chartUrl = null; // the blob: URL of the chart shown, revoked when replaced
  let filterTimer = null; // a filter waiting for the typing to pause: dropped when the view changes

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  function token() {
    return sessionStorage.getItem(TOKEN_KEY);
  }

  async function request(path) {
    const response = await fetch(path, {
      headers: { Authorization: "Bearer " + token(), Accept: "application/json" },
      cache: "no-store",
      credentials: "omit",
      referrerPolicy: "no-referrer",
    });
    if (!response.ok) {
      let message = response.status + " " + response.statusText;
      try {
        const body = await response.json();
        if (body && Array.isArray(body.errors) && body.errors.length && typeof body.errors[0].message === "string") {
          message = body.errors[0].message;
        }
      } catch (ignored) {
        // not JSON: the status line says enough
      }
      throw new ApiError(response.status, message);
    }
    return response;
  }

  async function getJson(path) {
    const response = await request(path);
    return { body: await response.json(), headers: response.headers };
  }

  // --- Small DOM helpers: text only, never HTML ---------------------------------------------

  function el(tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "text") node.textContent = value;
      else if (name === "className") node.className = value;
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const numberFormat = new Intl.NumberFormat("en-US");
  function count(value) {
    return value === null || value === undefined ? "—" : numberFormat.format(value);
  }
  function percent(value) {
    return value === null || value === undefined ? "—" : (value * 100).toFixed(1) + "%";
  }
  function when(value) {
    if (!value) return "—";
    const time = new Date(value);
    if (Number.isNaN(time.getTime())) return String(value);
    return time.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC").replace(/Z$/, " UTC");
  }
  function age(seconds) {
    if (seconds === null || seconds === undefined) return "";
    const units = [["year", 31557600], ["day", 86400], ["hour", 3600], ["minute", 60]];
    for (const [name, size] of units) {
      if (Math.abs(seconds) >= size) {
        const n = Math.floor(Math.abs(seconds) / size);
        return n + " " + name + (n === 1 ? "" : "s") + (seconds < 0 ? " ahead" : " ago");
      }
    }
    return "just now";
  }

  function say(message) {
    statusLine.textContent = message;
  }

  function setCrumbs(items) {
    crumbs.replaceChildren(
      ...items.map((item, index) => {
        const last = index === items.length - 1;
        const content = last ? el("span", { "aria-current": "page", text: item.label }) : el("a", { href: item.href, text: item.label });
        return el("li", {}, content);
      })
    );
  }

  function showFreshness(freshness, scope) {
    // How current the figures are: the newest course or progress event of the account(s) shown.
    if (!freshness) return;
    freshnessLine.textContent = freshness.newest_event_time
      ? "Data as of " + when(freshness.newest_event_time) + " (the newest event of " + scope + ", " + age(freshness.lag_seconds) + ")"
      : "No events of " + scope + " have been recorded yet.";
  }

  function show(...parts) {
    // The view's new content; a part left out (null) is not shown.
    view.replaceChildren(...parts.filter((part) => part !== null && part !== undefined));
  }

  function heading(text) {
    const h = el("h1", { tabindex: "-1", text: text });
    return h;
  }

  function figures(items) {
    return el("dl", { className: "figures" }, ...items.flatMap(([label, value]) => [el("div", {}, el("dt", { text: label }), el("dd", { text: value }))]));
  }

  function table(caption, columns, rows, options) {
    // columns: [{label, key, numeric, sortable}], rows: arrays of Node|string; options.sort, options.order, options.onSort
    const head = el(
      "tr",
      {},
      ...columns.map((column) => {
        const attributes = { scope: "col", className: column.numeric ? "num" : "" };
        if (!column.sortable || !options) return el("th", attributes, column.label);
        const active = options.sort === column.key;
        attributes["aria-sort"] = active ? (options.order === "desc" ? "descending" : "ascending") : "none";
        const next = active && options.order === "asc" ? "desc" : "asc";
        const arrow = active ? (options.order === "desc" ? " ▼" : " ▲") : "";
        return el(
          "th",
          attributes,
          el("button", { type: "button", className: "sort", "data-sort": column.key, onclick: () => options.onSort(column.key, next) }, column.label, el("span", { "aria-hidden": "true", text: arrow }))
        );
      })
    );
    const body = rows.map((cells) => el("tr", {}, ...cells.map((cell, i) => (i === 0 ? el("th", { scope: "row" }, cell) : el("td", { className: columns[i].numeric ? "num" : columns[i].time ? "time" : "" }, cell)))));
    return el("table", {}, el("caption", { text: caption }), el("thead", {}, head), el("tbody", {}, ...body));
  }

  function params(query) {
    return new URLSearchParams(query || "");
  }

  // --- Views ---------------------------------------------------------------------------------

  async function accountsView(run, query) {
    // A page of accounts at a time (a token may have many): each row's figures are one request.
    const page = Math.max(1, parseInt(params(query).get("page") || "1", 10) || 1);
    setCrumbs([{ label: "Accounts", href: "#/" }]);
    say("Loading accounts…");
    const { body: accounts, headers } = await getJson(API + "/accounts?page=" + page + "&per_page=" + PER_PAGE);
    const pages = lastPage(headers.get("Link")) || page;
    const summaries = await Promise.all(accounts.map((account) => getJson(API + "/accounts/" + account.id + "/progress_summary").then((r) => r.body)));
    if (run !== generation) return;
    const rows = summaries.map((s) => [
      el("a", { href: "#/accounts/" + s.account_id, text: "Account " + s.account_id }),
      count(s.courses),
      count(s.students),
      count(s.completed),
      percent(s.completion_rate),
      when(s.last_activity),
    ]);
    const columns = [
      { label: "Account" }, { label: "Courses", numeric: true }, { label: "Students", numeric: true },
      { label: "Completed", numeric: true }, { label: "Completion rate", numeric: true }, { label: "Last activity", time: true },
    ];
    const go = (number) => { location.hash = "#/?page=" + number; };
    show(
      heading("Accounts"),
      el("p", { text: pages > 1 ? "The accounts this token may see, " + PER_PAGE + " per page." : accounts.length === 1 ? "This token sees one account." : "This token sees " + accounts.length + " accounts." }),
      table("Accounts this token may see, with their progress", columns, rows),
      pages > 1
        ? el("nav", { "aria-label": "Pages of accounts", className: "pager" },
            el("button", { type: "button", id: "previous-page", disabled: page <= 1, onclick: () => go(page - 1) }, "Previous"),
            el("span", { id: "page-position", text: "Page " + page + " of " + pages }),
            el("button", { type: "button", id: "next-page", disabled: page >= pages, onclick: () => go(page + 1) }, "Next"))
        : null
    );
    const newest = summaries.map((s) => s.freshness).filter((f) => f.newest_event_time)
      .sort((a, b) => Date.parse(b.newest_event_time) - Date.parse(a.newest_event_time))[0];
    showFreshness(newest || { newest_event_time: null }, accounts.length === 1 ? "this account" : "these accounts");
    finish("accounts", accounts.length === 1 ? "1 account shown." : accounts.length + " accounts shown.");
  }

  function lastPage(header) {
    // The page number of Canvas's rel="last" link (this API always sends one).
    for (const part of (header || "").split(",")) {
      const match = part.match(/<([^>]+)>;\s*rel="last"/);
      if (match) return parseInt(new URL(match[1], location.href).searchParams.get("page") || "1", 10) || 1;
    }
    return null;
  }

  async function accountView(run, accountId, query) {
    const options = params(query);
    const search = options.get("search") || "";
    const sortable = ["name", "students", "completed", "completion_rate", "mean_share_done", "last_activity"];
    const sort = sortable.includes(options.get("sort")) ? options.get("sort") : "name";
    const order = options.get("order") === "desc" ? "desc" : "asc";
    const page = Math.max(1, parseInt(options.get("page") || "1", 10) || 1);
    setCrumbs([{ label: "Accounts", href: "#/" }, { label: "Account " + accountId }]);
    say("Loading account " + accountId + "…");
    const listQuery = new URLSearchParams({ sort: sort, order: order, page: String(page), per_page: String(PER_PAGE) });
    if (search) listQuery.set("search_term", search);
    const [summary, list] = await Promise.all([
      getJson(API + "/accounts/" + encodeURIComponent(accountId) + "/progress_summary").then((r) => r.body),
      getJson(API + "/accounts/" + encodeURIComponent(accountId) + "/course_progress?" + listQuery),
    ]);
    if (run !== generation) return;
    const total = parseInt(list.headers.get("X-Total-Count") || "0", 10);
    const pages = Math.max(1, Math.ceil(total / PER_PAGE));
    const go = (changes) => {
      const next = new URLSearchParams({ search: search, sort: sort, order: order, page: String(page) });
      for (const [key, value] of Object.entries(changes)) next.set(key, value);
      if (!next.get("search")) next.delete("search");
      location.hash = "#/accounts/" + accountId + "?" + next;
    };
    if (page > pages) {
      // An address past the last page (the list shrank, or a hand-made link): show the last page instead.
      go({ page: String(pages) });
      return;
    }
    const columns = [
      { label: "Course", key: "name", sortable: true }, { label: "Students", key: "students", numeric: true, sortable: true },
      { label: "Completed", key: "completed", numeric: true, sortable: true },
      { label: "Completion rate", key: "completion_rate", numeric: true, sortable: true },
      { label: "Mean share done", key: "mean_share_done", numeric: true, sortable: true },
      { label: "Last activity", key: "last_activity", sortable: true, time: true },
    ];
    const rows = list.body.map((course) => [
      el("a", { href: "#/courses/" + course.id, "data-course-id": course.id, text: course.name || "Course " + course.id }),
      count(course.students),
      count(course.completed),
      percent(course.completion_rate),
      percent(course.mean_share_done),
      when(course.last_activity),
    ]);
    const filter = el("input", { id: "course-filter", type: "search", value: search, autocomplete: "off", "aria-describedby": "filter-help" });
    filter.addEventListener("input", () => {
      clearTimeout(filterTimer);
      filterTimer = setTimeout(() => {
        filterTimer = null;
        if (run === generation) go({ search: filter.value, page: "1" });
      }, 350);
    });
    const pager = el(
      "nav",
      { "aria-label": "Pages of courses", className: "pager" },
      el("button", { type: "button", id: "previous-page", disabled: page <= 1, onclick: () => go({ page: String(page - 1) }) }, "Previous"),
      el("span", { id: "page-position", text: "Page " + Math.min(page, pages) + " of " + pages + " (" + count(total) + " courses)" }),
      el("button", { type: "button", id: "next-page", disabled: page >= pages, onclick: () => go({ page: String(page + 1) }) }, "Next")
    );
    show(
      heading("Account " + accountId),
      figures([
        ["Courses", count(summary.courses)],
        ["Students", count(summary.students)],
        ["Completed", count(summary.completed)],
        ["Completion rate", percent(summary.completion_rate)],
        ["Last activity", when(summary.last_activity)],
      ]),
      el("div", { className: "filter" }, el("label", { for: "course-filter", text: "Filter courses by name" }), filter,
        el("span", { id: "filter-help", className: "help", text: "Shows courses whose name contains this text." })),
      list.body.length
        ? table("Courses of account " + accountId + ", sorted by " + columns.find((c) => c.key === sort).label.toLowerCase() + (order === "desc" ? ", descending" : ""), columns, rows, {
            sort: sort,
            order: order,
            onSort: (key, next) => go({ sort: key, order: next, page: "1" }),
          })
        : el("p", { className: "empty", text: search ? "No course name contains “" + search + "”." : "This account has no courses yet." }),
      pager
    );
    showFreshness(summary.freshness, "this account");
    finish("account", total + " courses; page " + page + " of " + pages + ".");
  }

  async function courseView(run, courseId, query) {
    const options = params(query);
    const range = new URLSearchParams();
    if (options.get("start")) range.set("start_at", options.get("start"));
    if (options.get("end")) range.set("end_at", options.get("end"));
    say("Loading course " + courseId + "…");
    const suffix = range.toString() ? "?" + range : "";
    const base = API + "/courses/" + encodeURIComponent(courseId);
    const [trend, image] = await Promise.all([
      getJson(base + "/progress_trend" + suffix).then((r) => r.body),
      request(base + "/progress_trend.svg" + suffix).then((r) => r.blob()),
    ]);
    if (run !== generation) return;
    const course = trend.course;
    const name = course.name || "Course " + course.id;
    const account = course.account_id;
    setCrumbs([{ label: "Accounts", href: "#/" }, ...(account ? [{ label: "Account " + account, href: "#/accounts/" + account }] : []), { label: name }]);
    if (chartUrl) URL.revokeObjectURL(chartUrl);
    chartUrl = URL.createObjectURL(new Blob([image], { type: "image/svg+xml" }));
    const startInput = el("input", { id: "start-day", type: "date", value: trend.start_at });
    const endInput = el("input", { id: "end-day", type: "date", value: trend.end_at });
    const form = el(
      "form",
      { className: "range", onsubmit: (event) => {
          event.preventDefault();
          const next = new URLSearchParams();
          if (startInput.value) next.set("start", startInput.value);
          if (endInput.value) next.set("end", endInput.value);
          location.hash = "#/courses/" + courseId + "?" + next;
        } },
      el("label", { for: "start-day", text: "From" }), startInput,
      el("label", { for: "end-day", text: "to" }), endInput,
      el("button", { type: "submit" }, "Show")
    );
    const dayColumns = [{ label: "Day" }, { label: "Students", numeric: true }, { label: "Completed", numeric: true }, { label: "Mean share done", numeric: true }];
    const dayRows = trend.days.map((d) => [d.day, count(d.students), count(d.completed), percent(d.mean_share_done)]);
    show(
      heading(name),
      el("p", { className: "meta", text: [course.sis_course_id ? "SIS id " + course.sis_course_id : null, "course " + course.id, course.workflow_state].filter(Boolean).join(" · ") }),
      figures([
        ["Students", count(course.students)],
        ["Completed", count(course.completed)],
        ["Completion rate", percent(course.completion_rate)],
        ["Mean share done", percent(course.mean_share_done)],
        ["Stalled students", count(trend.stalled_students)],
      ]),
      el("p", { className: "help", id: "stalled-help", text: "Stalled: not completed, and no progress event for more than " + trend.stalled_after_days + " days." }),
      el("h2", { text: "Daily trend" }),
      form,
      el("figure", {}, el("img", { id: "trend-chart", src: chartUrl, alt: trend.summary, width: 760, height: 400 }), el("figcaption", { "aria-hidden": "true", text: trend.summary })),
      el("details", {}, el("summary", { text: "Daily figures as a table (" + trend.days.length + " days)" }), table("Daily figures of " + name, dayColumns, dayRows))
    );
    showFreshness(trend.freshness, "this course's account");
    finish("course", name + " loaded.");
  }

  // What had the focus when a view started loading: the same control gets it back in the new view (typing in
  // the filter, paging, sorting), else the view's heading, so a screen reader starts at the new content.
  let focusedBefore = null;
  function remember() {
    const active = document.activeElement;
    if (!active || active === document.body) return null;
    if (active.id) return "#" + active.id;
    if (active.dataset && active.dataset.sort) return 'button[data-sort="' + active.dataset.sort + '"]';
    return null;
  }

  function finish(name, message) {
    document.body.dataset.view = name;
    document.body.dataset.state = "ready";
    say(message);
    const again = focusedBefore && view.querySelector(focusedBefore);
    if (again && !again.disabled) {
      again.focus({ preventScroll: true });
      if (again.id === "course-filter") again.setSelectionRange(again.value.length, again.value.length);
      return;
    }
    const h = view.querySelector("h1");
    if (h) h.focus({ preventScroll: true });
  }

  function showSignIn(message) {
    view.replaceChildren();
    crumbs.replaceChildren();
    signIn.hidden = false;
    signOut.hidden = true;
    document.getElementById("sign-in-error").textContent = message || "";
    document.body.dataset.view = "sign-in";
    document.body.dataset.state = "ready";
    document.getElementById("token").focus();
  }

  async function route() {
    const run = ++generation;
    clearTimeout(filterTimer);
    filterTimer = null;
    focusedBefore = remember();
    document.body.dataset.state = "loading";
    if (!token()) {
      showSignIn("");
      return;
    }
    signIn.hidden = true;
    signOut.hidden = false;
    const hash = location.hash.replace(/^#/, "") || "/";
    const [path, query] = hash.split("?");
    let match;
    try {
      if ((match = path.match(/^\/accounts\/(\d{1,19}|self)$/))) await accountView(run, match[1], query);
      else if ((match = path.match(/^\/courses\/(\d{1,19})$/))) await courseView(run, match[1], query);
      else await accountsView(run, query);
    } catch (error) {
      if (run !== generation) return;
      if (error instanceof ApiError && error.status === 401) {
        sessionStorage.removeItem(TOKEN_KEY);
        showSignIn("The server did not accept this token: " + error.message);
        return;
      }
      const message = error instanceof ApiError && error.status === 404 ? "Not found, or not visible to this token." : error.message;
      view.replaceChildren(heading("Cannot show this page"), el("p", { className: "error", role: "alert", text: message }), el("p", {}, el("a", { href: "#/", text: "Back to the accounts" })));
      document.body.dataset.view = "error";
      document.body.dataset.state = "ready";
      say("");
    }
  }

  document.getElementById("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = document.getElementById("token").value.trim();
    if (!value) {
      document.getElementById("sign-in-error").textContent = "Enter a token.";
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, value);
    document.getElementById("token").value = "";
    route();
  });
  signOut.addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    freshnessLine.textContent = "";
    route();
  });
  window.addEventListener("hashchange", route);
  route();
})();
