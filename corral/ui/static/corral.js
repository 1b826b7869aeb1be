// Corral dashboard: live updates, actions and log tails. Plain JavaScript, no build step.
//
// Pages are rendered on the server. This script follows the cluster's event stream and, when an
// event concerns the page, re-fetches the page's live regions ([data-live]) and swaps them in.
// Every action is a call of the native API (/api/v1), the same calls the CLI makes.
"use strict";

(() => {
  const body = document.body;
  const since = Number(body.dataset.since || 0);
  const watch = body.dataset.watch || "all";
  const EVENT_TYPES = [
    "job_created", "job_updated", "job_deleted", "run_state", "run_skipped", "task_state", "task_health",
    "agent_state", "service_created", "service_updated", "service_deleted",
    "deployment_started", "deployment_step", "deployment_finished",
  ];
  const MIN_GAP = { all: 1000, agents: 1000, jobs: 400, services: 400, deployments: 400, usage: 1000, share: 1000 }[watch] ?? 250; // ms between refreshes

  // --- the API, with the token the login page stored in a cookie

  function token() {
    const hit = document.cookie.split("; ").find((c) => c.startsWith("corral_token="));
    return hit ? decodeURIComponent(hit.slice("corral_token=".length)) : null;
  }

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  function describe(status, payload) {
    const detail = payload && payload.detail;
    if (typeof detail === "string") return detail;
    if (Array.isArray(detail)) {
      return detail
        .map((d) => {
          const loc = (d.loc || []).filter((p) => p !== "body").join(".");
          return loc ? `${loc}: ${d.msg}` : d.msg;
        })
        .join("; ");
    }
    return `the API answered ${status}`;
  }

  async function api(method, path, json) {
    const headers = { Accept: "application/json" };
    const t = token();
    if (t) headers.Authorization = `Bearer ${t}`;
    if (json !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, {
      method,
      headers,
      body: json === undefined ? undefined : JSON.stringify(json),
    });
    if (response.status === 204) return null;
    const payload = await response.json().catch(() => null);
    if (!response.ok) throw new ApiError(response.status, describe(response.status, payload));
    return payload;
  }

  const enc = encodeURIComponent;

  // --- notices and confirmation

  const notice = document.getElementById("notice");
  let noticeTimer = 0;

  function tell(message, kind = "info") {
    if (!notice) return;
    notice.querySelector(".notice-text").textContent = message;
    notice.dataset.kind = kind;
    notice.hidden = false;
    clearTimeout(noticeTimer);
    if (kind !== "error") noticeTimer = setTimeout(() => (notice.hidden = true), 5000);
  }

  notice?.querySelector("[data-dismiss]")?.addEventListener("click", () => (notice.hidden = true));

  // Asks for a whole number in the page's own dialog (window.prompt cannot be styled or
  // checked); resolves to the number, or null when cancelled.
  function askNumber(title, text, value) {
    const dialog = document.getElementById("ask-number");
    if (!dialog || typeof dialog.showModal !== "function") {
      const answer = window.prompt(text, String(value));
      return Promise.resolve(answer === null || answer.trim() === "" ? null : Number(answer));
    }
    const input = dialog.querySelector("#ask-number-value");
    dialog.querySelector("#ask-number-title").textContent = title;
    dialog.querySelector("#ask-number-text").textContent = text;
    input.value = String(value);
    dialog.returnValue = "cancel";
    return new Promise((resolve) => {
      dialog.addEventListener(
        "close",
        () => resolve(dialog.returnValue === "ok" && input.value !== "" ? Number(input.value) : null),
        { once: true },
      );
      dialog.showModal();
      input.select();
    });
  }

  function confirmAction(title, text, verb) {
    const dialog = document.getElementById("confirm");
    if (!dialog || typeof dialog.showModal !== "function") return Promise.resolve(window.confirm(text));
    dialog.querySelector("#confirm-title").textContent = title;
    dialog.querySelector("#confirm-text").textContent = text;
    dialog.querySelector("#confirm-ok").textContent = verb;
    dialog.returnValue = "cancel";
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
      dialog.showModal();
    });
  }

  // --- relative times

  function relative(date) {
    const s = Math.round((Date.now() - date.getTime()) / 1000);
    const a = Math.abs(s);
    const text =
      a < 5 ? "just now"
      : a < 60 ? `${a}s`
      : a < 3600 ? `${Math.floor(a / 60)}m`
      : a < 86400 ? `${Math.floor(a / 3600)}h ${Math.floor((a % 3600) / 60)}m`
      : `${Math.floor(a / 86400)}d`;
    if (text === "just now") return text;
    return s >= 0 ? `${text} ago` : `in ${text}`;
  }

  function updateTimes(root = document) {
    for (const el of root.querySelectorAll("time[data-rel]")) {
      const date = new Date(el.getAttribute("datetime"));
      if (Number.isNaN(date.getTime())) continue;
      const clock = { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false };
      el.textContent =
        el.dataset.rel === "clock"
          ? date.toLocaleTimeString([], clock)
          : el.dataset.rel === "date"
            ? date.toLocaleString([], { year: "numeric", month: "2-digit", day: "2-digit", ...clock })
            : relative(date);
      el.title = date.toLocaleString();
    }
  }

  // --- live regions

  const TARGETS = ["job", "task", "service", "deployment", "agent", "scale", "force"];

  function focusKey(el) {
    if (el.id) return `#${CSS.escape(el.id)}`;
    if (el.dataset.action) {
      // The same action on the same target: every data attribute naming what it acts on.
      const parts = TARGETS.filter((k) => k in el.dataset).map((k) => `[data-${k}="${CSS.escape(el.dataset[k])}"]`);
      return `[data-action="${CSS.escape(el.dataset.action)}"]${parts.join("")}`;
    }
    if (el.tagName === "SUMMARY" && el.parentElement?.id) return `#${CSS.escape(el.parentElement.id)} > summary`;
    if (el.getAttribute("href")) return `[href="${CSS.escape(el.getAttribute("href"))}"]`;
    return null;
  }

  function swap(current, fresh) {
    if (current.innerHTML === fresh.innerHTML) return;
    const active = document.activeElement;
    const key = active && current.contains(active) ? focusKey(active) : null;
    const open = new Map([...current.querySelectorAll("details[id]")].map((d) => [d.id, d.open]));
    current.replaceChildren(...fresh.childNodes);
    for (const d of current.querySelectorAll("details[id]")) {
      if (open.has(d.id)) d.open = open.get(d.id);
    }
    updateTimes(current);
    if (key) current.querySelector(key)?.focus({ preventScroll: true });
  }

  let inFlight = false;
  let again = false;
  let lastRefresh = 0;
  let timer = 0;

  async function refresh() {
    if (inFlight) {
      again = true;
      return;
    }
    inFlight = true;
    lastRefresh = Date.now();
    try {
      const response = await fetch(location.pathname + location.search, {
        headers: { "X-Corral-Partial": "1" },
        credentials: "same-origin",
      });
      if (response.status === 401) {
        location.assign(`/ui/login?next=${enc(location.pathname + location.search)}`);
        return;
      }
      const html = await response.text();
      const doc = new DOMParser().parseFromString(`<body>${html}</body>`, "text/html");
      for (const fresh of doc.querySelectorAll("[data-live][id]")) {
        const current = document.getElementById(fresh.id);
        if (current) swap(current, fresh);
      }
      body.dataset.refreshed = String(Number(body.dataset.refreshed || 0) + 1);
    } catch (err) {
      setLive("offline");
    } finally {
      inFlight = false;
      if (again) {
        again = false;
        schedule();
      }
    }
  }

  function schedule() {
    if (timer) return;
    const wait = Math.max(0, lastRefresh + MIN_GAP - Date.now());
    timer = setTimeout(() => {
      timer = 0;
      refresh();
    }, wait);
  }

  // --- the event stream

  const liveBadge = document.getElementById("live");
  function setLive(state) {
    if (!liveBadge) return;
    liveBadge.dataset.state = state;
    liveBadge.textContent = { live: "live", connecting: "connecting", offline: "reconnecting" }[state];
  }

  // Events of services name the service (a path, "/web") in `job`; deployments name theirs
  // in data.services or, for a step, in data.actions.
  function ofService(ev) {
    return (ev.job || "").startsWith("/") || ev.type.startsWith("service_") || ev.type.startsWith("deployment_");
  }

  function deploymentTouches(ev, service) {
    const data = ev.data || {};
    if ((data.services || []).includes(service)) return true;
    return (data.actions || []).some((a) => a.app === service);
  }

  function concerns(ev) {
    const [kind, name] = [watch.split(":")[0], watch.slice(watch.indexOf(":") + 1)];
    switch (kind) {
      case "all":
        return true;
      case "jobs":
        return ev.type !== "agent_state" && !ofService(ev);
      case "agents":
        return ev.type === "agent_state" || ev.type === "task_state";
      case "job":
        return ev.job === name || ev.type.startsWith("job_");
      case "task":
        return ev.task_id === name;
      case "services":
        return ofService(ev);
      case "service":
        return ev.job === name || (ev.type.startsWith("deployment_") && deploymentTouches(ev, name));
      case "deployments":
        return ev.type.startsWith("deployment_") || ev.type.startsWith("service_");
      case "usage":
        return ev.type === "task_state";
      case "share":
        return ev.type === "task_state" || ev.type.startsWith("job_");
      default:
        return false;
    }
  }

  const onTaskEvent = [];
  let lastId = since;

  function connect() {
    if (!window.EventSource || !liveBadge) return;
    const source = new EventSource(`/ui/events?since=${lastId}`);
    source.onopen = () => setLive("live");
    const handle = (message) => {
      let ev;
      try {
        ev = JSON.parse(message.data);
      } catch {
        return;
      }
      lastId = Math.max(lastId, Number(ev.id) || 0);
      if (concerns(ev)) {
        schedule();
        if (ev.task_id) onTaskEvent.forEach((fn) => fn(ev));
      }
    };
    for (const type of EVENT_TYPES) source.addEventListener(type, handle);
    source.onmessage = handle;
    source.onerror = () => {
      // Reconnect ourselves, from the last event seen, so nothing is missed or repeated.
      source.close();
      setLive("offline");
      setTimeout(connect, 2000);
    };
  }

  // --- actions: each one call of the native API

  const ACTIONS = {
    async run(el) {
      const job = el.dataset.job;
      const run = await api("POST", `/api/v1/jobs/${enc(job)}/runs`);
      return `Run #${run.number} of ${job} started.`;
    },
    async kill(el) {
      const job = el.dataset.job;
      const ok = await confirmAction(`Kill ${job}?`, `Every unfinished task of ${job} is killed.`, "Kill");
      if (!ok) return null;
      await api("POST", `/api/v1/jobs/${enc(job)}/kill`);
      return `${job}: unfinished tasks killed.`;
    },
    async delete(el) {
      const job = el.dataset.job;
      const ok = await confirmAction(
        `Delete ${job}?`,
        `${job} is deleted with all of its runs, tasks and their history. This cannot be undone.`,
        "Delete",
      );
      if (!ok) return null;
      await api("DELETE", `/api/v1/jobs/${enc(job)}`);
      if (location.pathname === `/ui/jobs/${enc(job)}`) location.assign("/ui/jobs");
      return `${job} deleted.`;
    },
    async disable(el) {
      return setDisabled(el.dataset.job, true);
    },
    async enable(el) {
      return setDisabled(el.dataset.job, false);
    },
    async drain(el) {
      const agent = await api("POST", `/api/v1/agents/${enc(el.dataset.agent)}/drain`);
      return `${agent.hostname} is draining: it takes no new work.`;
    },
    async undrain(el) {
      const agent = await api("POST", `/api/v1/agents/${enc(el.dataset.agent)}/undrain`);
      return `${agent.hostname} takes work again.`;
    },
    async "kill-task"(el) {
      const task = el.dataset.task;
      const ok = await confirmAction(`Kill ${task}?`, `The task ${task} is stopped.`, "Kill");
      if (!ok) return null;
      await api("POST", `/api/v1/tasks/${enc(task)}/kill`);
      return `${task} killed.`;
    },
  };

  // A change of a service that a running deployment holds is refused (409); offer to force
  // it, which cancels that deployment where it stands, as the API's ?force=true does.
  async function changeService(method, path, body) {
    try {
      return await api(method, path, body);
    } catch (err) {
      if (!(err instanceof ApiError) || err.status !== 409) throw err;
      const ok = await confirmAction("Force the change?", `${err.message}`, "Force");
      if (!ok) return null;
      const sep = path.includes("?") ? "&" : "?";
      return api(method, `${path}${sep}force=true`, body);
    }
  }

  // A service's id is a path of DNS labels ("/lab/db"): it goes into the URL as it is.
  const servicePath = (id) => `/api/v1/services${id}`;

  Object.assign(ACTIONS, {
    async scale(el) {
      const id = el.dataset.service;
      const n = await askNumber(`Scale ${id}`, `How many tasks of ${id} should run?`, el.dataset.instances);
      if (n === null) return null;
      if (!Number.isInteger(n) || n < 0) throw new ApiError(400, "The number of instances is a whole number, 0 or more.");
      const dep = await changeService("POST", `${servicePath(id)}/scale`, { instances: n });
      return dep && `${id}: scaling to ${n}.`;
    },
    async restart(el) {
      const id = el.dataset.service;
      const ok = await confirmAction(
        `Restart ${id}?`,
        `Every task of ${id} is replaced by a new one, a few at a time, by its upgrade strategy.`,
        "Restart",
      );
      if (!ok) return null;
      const dep = await changeService("POST", `${servicePath(id)}/restart`);
      return dep && `${id}: restarting.`;
    },
    async "delete-service"(el) {
      const id = el.dataset.service;
      const ok = await confirmAction(
        `Delete ${id}?`,
        `${id} is deleted and every task of it is stopped. This cannot be undone.`,
        "Delete",
      );
      if (!ok) return null;
      const dep = await changeService("DELETE", servicePath(id));
      if (!dep) return null;
      if (location.pathname === `/ui/services${id}`) location.assign("/ui/services");
      return `${id}: deleting.`;
    },
    async "kill-service-task"(el) {
      const { service, task } = el.dataset;
      const scale = el.dataset.scale === "true";
      const ok = await confirmAction(
        `Kill ${task}?`,
        scale
          ? `The task is stopped and ${service} runs one instance fewer.`
          : `The task is stopped and a new task of ${service} replaces it.`,
        "Kill",
      );
      if (!ok) return null;
      const path = `${servicePath(service)}/tasks/${enc(task)}${scale ? "?scale=true" : ""}`;
      const killed = await changeService("DELETE", path);
      return killed && `${task} killed.`;
    },
    async "cancel-deployment"(el) {
      const id = el.dataset.deployment;
      const force = el.dataset.force === "true";
      const ok = await confirmAction(
        force ? "Stop the deployment here?" : "Roll the deployment back?",
        force
          ? `Deployment ${id} stops where it stands; its services keep what it has done so far.`
          : `Deployment ${id} is cancelled and a new deployment returns its services to their previous versions.`,
        force ? "Stop here" : "Roll back",
      );
      if (!ok) return null;
      const back = await api("DELETE", `/api/v1/deployments/${enc(id)}${force ? "?force=true" : ""}`);
      return back ? `Rolling back with deployment ${back.id}.` : `Deployment ${id} stopped.`;
    },
  });

  async function setDisabled(job, disabled) {
    // Disabling is a change of the job's spec: the same apply (PUT) the CLI's `corral apply` makes.
    const view = await api("GET", `/api/v1/jobs/${enc(job)}`);
    await api("PUT", `/api/v1/jobs/${enc(job)}`, { ...view.spec, disabled });
    return `${job} ${disabled ? "disabled" : "enabled"}.`;
  }

  document.addEventListener("click", async (e) => {
    const el = e.target.closest("button[data-action]");
    if (!el || el.disabled || !(el.dataset.action in ACTIONS)) return;
    e.preventDefault();
    if (el.getAttribute("aria-busy") === "true") return; // still on its way
    // Busy rather than disabled: a disabled button would drop the keyboard focus.
    el.setAttribute("aria-busy", "true");
    try {
      const message = await ACTIONS[el.dataset.action](el);
      if (message) {
        tell(message);
        schedule();
      }
    } catch (err) {
      tell(err instanceof ApiError ? err.message : `Request failed: ${err.message}`, "error");
    } finally {
      el.removeAttribute("aria-busy");
    }
  });

  // --- the jobs filter: narrows the list as one types, keeping the query in the URL

  const filter = document.querySelector("form[data-filter]");
  if (filter) {
    let typing = 0;
    const apply = () => {
      const params = new URLSearchParams();
      for (const [k, v] of new FormData(filter)) if (String(v).trim()) params.set(k, String(v).trim());
      const query = params.toString();
      history.replaceState(null, "", query ? `${location.pathname}?${query}` : location.pathname);
      lastRefresh = 0;
      refresh();
    };
    filter.addEventListener("input", () => {
      clearTimeout(typing);
      typing = setTimeout(apply, 150);
    });
    filter.addEventListener("submit", (e) => {
      e.preventDefault();
      apply();
    });
  }

  // --- log tails

  function size(n) {
    return n < 1024 ? `${n} B` : n < 1048576 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1048576).toFixed(1)} MiB`;
  }

  function tail(pre) {
    const task = pre.dataset.task;
    const file = pre.dataset.log;
    const status = document.querySelector(`[data-log-status="${file}"]`);
    const MAX_CHARS = 2_000_000;
    let offset = 0;
    let busy = false;
    let done = false;
    let timer = 0;
    let backoff = 1000;
    const decoder = new TextDecoder();  // a log that is not UTF-8 arrives as base64

    async function poll() {
      if (busy || done) return;
      busy = true;
      clearTimeout(timer);
      try {
        const chunk = await api("GET", `/api/v1/tasks/${enc(task)}/logs/${file}?offset=${offset}`);
        if (chunk.data) {
          const stick = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 24;
          const text = chunk.encoding === "base64"
            ? decoder.decode(Uint8Array.from(atob(chunk.data), (c) => c.charCodeAt(0)), { stream: true })
            : chunk.data;
          pre.append(text);
          if (pre.textContent.length > MAX_CHARS) pre.textContent = pre.textContent.slice(-MAX_CHARS / 2);
          if (stick) pre.scrollTop = pre.scrollHeight;
        }
        offset = chunk.next_offset;
        backoff = 1000;
        if (chunk.complete) {
          done = true;
          status.textContent = `${size(chunk.size)} · complete`;
          pre.dataset.complete = "true";
        } else {
          status.textContent = chunk.size ? `${size(chunk.size)} · following` : "waiting for output…";
          timer = setTimeout(poll, offset < chunk.size ? 0 : 1000);
        }
      } catch (err) {
        status.textContent = err.message;
        if (err.status === 404) {
          done = true;
        } else {
          backoff = Math.min(backoff * 2, 15000);
          timer = setTimeout(poll, backoff);
        }
      } finally {
        busy = false;
      }
    }
    poll();
    return poll;
  }

  for (const pre of document.querySelectorAll("pre[data-log]")) {
    const poll = tail(pre);
    onTaskEvent.push(() => poll());
  }

  // --- start

  updateTimes();
  setInterval(updateTimes, 5000);
  // Some changes send no event (an agent's heartbeat): such pages also refresh on a timer.
  const poll = Number(body.dataset.poll || 0);
  if (poll) setInterval(schedule, poll);
  connect();
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") schedule();
  });
})();
