"""Russian and English UI texts, and which one a request gets.

The language comes from `?lang=` (remembered in a cookie), else the cookie, else the browser's
Accept-Language, else the hotline's default language. A key missing from a language falls back
to English, then to the key itself, so a forgotten translation shows up as text, not a crash.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fastapi import Request, Response
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, pass_context

from dashboard.i18n_analytics import MESSAGES as ANALYTICS_MESSAGES
from dashboard.i18n_requests import MESSAGES as REQUEST_MESSAGES

LANGUAGES = ("ru", "en")
COOKIE = "hotline_lang"
FALLBACK = "en"

Translate = Callable[..., str]

MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "brand": "Hotline",
        "nav.today": "Today",
        "nav.calls": "Call log",
        "nav.operator": "My work",
        "nav.callbacks": "Callbacks",
        "nav.wallboard": "Wallboard",
        "nav.reports": "Reports",
        "nav.incidents": "Incidents",
        "nav.flows": "Flows",
        "search.label": "Caller number",
        "search.button": "Find",
        "lang.switch": "Русский",
        # signing in (dashboard/routes/login.py)
        "auth.title": "Sign in",
        "auth.username": "User name",
        "auth.password": "Password",
        "auth.remember": "Keep me signed in (an unattended wallboard screen)",
        "auth.submit": "Sign in",
        "auth.failed": "Wrong user name or password, or the form expired. Try again.",
        "auth.hint": "Accounts are made by a supervisor: hotline users add NAME --role operator",
        "auth.logout": "Sign out",
        "role.supervisor": "supervisor",
        "role.operator": "operator",
        "role.dispatcher": "dispatcher",
        "role.crew": "crew",
        "nav.requests": "Requests",
        "nav.dispatch": "Dispatch",
        "nav.crew": "Crew jobs",
        # brute-force lockout (dashboard/login_throttle.py)
        "auth.locked": "Too many failed sign-ins. Try again in {minutes} min.",
        # accounts pages (dashboard/routes/admin_pages.py)
        "nav.admin": "Accounts",
        "nav.control_audit": "Call control",
        "control.title": "Call control",
        "control.mode": "Mode",
        "control.listen": "Listen",
        "control.whisper": "Whisper",
        "control.barge": "Barge in",
        "control.monitor": "Ring my phone",
        "control.to_queue": "Move to queue",
        "control.move": "Move caller",
        "control.move_waiting_from": "Everyone waiting in",
        "control.move_waiting_to": "to",
        "control.move_waiting": "Move them",
        "control.hangup": "End call",
        "control.hangup_confirm": "End this call for the caller and the operator?",
        "control.audit": "Call control audit",
        "control.audit_about": (
            "Every supervisor action on calls and operators: who, when, what, and the result."
        ),
        "control.by": "By",
        "control.action": "Action",
        "control.call": "Call",
        "control.target": "Target",
        "control.result": "Result",
        "control.no_actions": "No call-control actions yet.",
        "admin.users": "Accounts",
        "admin.tokens": "API tokens",
        "admin.role": "Role",
        "admin.linked": "Roster operator",
        "admin.last_login": "Last sign-in",
        "admin.actions": "Actions",
        "admin.no_operator": "— none —",
        "admin.link": "Link",
        "admin.active": "active",
        "admin.disabled": "disabled",
        "admin.disable": "Disable",
        "admin.enable": "Enable",
        "admin.generate_hint": "empty: generate",
        "admin.reset_password": "Set new password",
        "admin.add_user": "New account",
        "admin.password_hint": "at least {min} characters; leave empty to generate one",
        "admin.create": "Create account",
        "admin.shown.created": "Account {name} created. Its password:",
        "admin.shown.password": "New password of {name}:",
        "admin.shown.token": "API token {name}:",
        "admin.shown_once": "Shown once: copy it now. Only a hash is kept.",
        "admin.done.created": "Account {name} created.",
        "admin.done.password": "Password of {name} changed; its sessions ended.",
        "admin.done.disabled": "Account {name} disabled; its sessions ended.",
        "admin.done.enabled": "Account {name} enabled.",
        "admin.done.linked": "Roster operator of {name} saved.",
        "admin.done.revoked": "API token {name} revoked.",
        "admin.done.lifted": "The ban of {name} is lifted; Asterisk lets it in within seconds.",
        "admin.done.not_banned": "{name} is not banned.",
        "admin.security": "SIP bans",
        "admin.security_about": (
            "Addresses that failed SIP sign-in too often are refused for a while"
            " (settings sip_ban_*). The carrier's addresses are never banned."
        ),
        "admin.ban_address": "Address",
        "admin.ban_reason": "Why",
        "admin.ban_failures": "{count} × {reason}",
        "admin.ban_since": "Banned at",
        "admin.ban_until": "Until",
        "admin.ban_lift": "Lift",
        "admin.no_bans": "No banned addresses.",
        "admin.token_name": "Name",
        "admin.token_name_hint": "what uses it, e.g. wallboard-hall",
        "admin.token_start": "Starts with",
        "admin.created": "Created",
        "admin.last_used": "Last used",
        "admin.never": "never",
        "admin.revoked_at": "revoked {at}",
        "admin.revoke": "Revoke",
        "admin.no_tokens": "No API tokens.",
        "admin.add_token": "New API token",
        "admin.create_token": "Create token",
        "admin.token_use": "Send it as the header Authorization: Bearer TOKEN.",
        "account.err.invalid": "The input was refused.",
        "account.err.password_short": "The password must have at least {min} characters.",
        "account.err.password_long": "The password is too long.",
        "account.err.username": (
            "User name: 1-64 letters, digits and . _ @ -, starting with a letter or digit."
        ),
        "account.err.role": "Unknown role.",
        "account.err.no_operator": "No operator with SIP login {login} in the roster.",
        "account.err.user_exists": "Account {name} already exists.",
        "account.err.no_user": "No account {name}.",
        "account.err.token_name": "Token name: at most 64 characters.",
        "account.err.no_token": "No API token {id}.",
        "account.err.self_disable": "You cannot disable your own account.",
        # home page
        "home.today": "Calls today",
        "home.from": "Calls from",
        "home.no_calls": "No calls yet.",
        "home.callbacks": "Open callbacks",
        "home.no_callbacks": "Nobody waits for a callback.",
        "home.live": "Live — updated",
        "home.offline": "Cannot reach the server; retrying…",
        # columns and fields
        "col.time": "Time",
        "col.started": "Started",
        "col.number": "Caller number",
        "col.name": "Caller name",
        "col.menu": "Menu",
        "col.queue": "Queue",
        "col.intent": "Intent",
        "col.outcome": "Outcome",
        "col.operator": "Operator",
        "col.wait_talk": "Wait / talk",
        "col.since": "Since",
        "col.reason": "Reason",
        "col.attempts": "Attempts",
        "col.updated": "Updated",
        "col.stage": "Stage",
        "col.in_stage": "In stage",
        "col.state": "State",
        "col.in_state": "In state",
        "in_progress": "in progress",
        # call log
        "calls.title": "Call log",
        "calls.filter": "Filter",
        "calls.reset": "Reset",
        "calls.date_from": "From",
        "calls.date_to": "To",
        "calls.any": "any",
        "calls.found": "{count} calls found",
        "calls.none": "No calls match.",
        "calls.export": "Export CSV",
        "calls.prev": "← Newer",
        "calls.next": "Older →",
        "calls.page": "Page {page} of {pages}",
        "calls.bad_date": "Dates are YYYY-MM-DD.",
        # call detail
        "call.title": "Call {id}",
        "call.caller_name": "Caller name",
        "call.dialled": "Number dialled",
        "call.tenant": "Company",
        "call.tenant_centre": "the centre",
        "call.tenant_source.number": "by the number dialled",
        "call.tenant_source.phone": "by the caller's registered phone",
        "call.tenant_source.earlier_call": "by the caller's earlier call",
        "call.tenant_source.keypad": "house code keyed by the caller",
        "call.tenant_source.unknown": "not found: sent to a coordinator",
        "call.tenant_source.centre": "the centre's number",
        "call.answered": "Answered",
        "call.ended": "Ended",
        "call.menu_choice": "Menu choice",
        "call.intent_confidence": "Intent confidence",
        "call.transcript": "Transcript",
        "call.utterance": "Recorded utterance",
        "call.disposition": "Disposition",
        "call.disposition_history": "Disposition history",
        "call.disposition_for": "Operator",
        "call.disposition_by": "Saved by",
        "call.hangup": "Hang-up",
        "call.timeline": "Timeline",
        "call.event": "Event",
        "call.details": "Details",
        "call.no_events": "No events recorded.",
        "call.back": "← Call log",
        # wallboard
        "wb.title": "Wallboard",
        "wb.queues": "Queues",
        "wb.waiting": "Waiting",
        "wb.longest": "Longest wait",
        "wb.offered": "Offered",
        "wb.answered": "Answered",
        "wb.abandoned": "Abandoned",
        "wb.sl": "Service level",
        "wb.asa": "ASA",
        "wb.aht": "AHT",
        "wb.operators": "Operators",
        "wb.no_operators": "No operators in the roster.",
        "wb.calls": "Calls in progress",
        "wb.no_calls": "No calls in progress.",
        "wb.alerts": "Alerts",
        "wb.no_alerts": "No alerts.",
        "wb.live": "Live",
        "wb.connecting": "Connecting…",
        "wb.reconnecting": "Connection lost; reconnecting…",
        "wb.redis_down": "Live events unavailable (Redis); figures from the call log",
        "wb.stale": "Live data is STALE (last update {age} ago); figures from the call log",
        "wb.stale_unknown": (
            "Live data is STALE (no update from the router); figures from the call log"
        ),
        "wb.updated": "updated",
        "wb.definitions": "Definitions",
        "wb.def.offered": "Offered: calls that joined the queue today (since local midnight).",
        "wb.def.sl": (
            "Service level: calls answered within {seconds} s of joining the queue, divided by "
            "the offered calls already decided (answered, ended, or waiting longer than "
            "{seconds} s). Target {target}%."
        ),
        "wb.def.asa": "ASA (average speed of answer): mean wait of the answered calls.",
        "wb.def.aht": "AHT (average handle time): mean talk time of the finished answered calls.",
        "wb.alert.service_level": "Queue {queue}: service level {value}% below target {threshold}%",
        "wb.alert.queue_waiting": "Queue {queue}: {value} callers waiting (threshold {threshold})",
        "wb.alert.callbacks_overdue": "{value} callbacks overdue",
        "stage.menu": "menu",
        "stage.queue": "queue",
        "stage.talking": "talking",
        "op.unknown": "unknown",
        "op.talking": "talking",
        "op.available": "available",
        "op.paused": "paused",
        "op.logged_out": "logged out",
        "op.ringing": "ringing",
        "op.wrapup": "wrap-up",
        "op.busy": "on a call",
        "op.free": "free",
        "op.offline": "phone offline",
        # reports
        "rep.title": "Reports",
        "rep.by": "Group by",
        "rep.by_day": "day",
        "rep.by_hour": "hour of day",
        "rep.by_day_title": "Calls per day",
        "rep.by_hour_title": "Calls per hour of day",
        "rep.by_queue": "By queue",
        "rep.by_intent": "By intent",
        "rep.total": "Calls",
        "rep.by_operator": "By operator",
        "rep.by_tenant": "By tenant",
        "rep.all_tenants": "all tenants",
        "rep.centre": "the centre's own",
        "col.tenant": "Tenant",
        "nav.tenants": "Tenants",
        "tenants.title": "Tenants",
        "tenants.slug": "Short name",
        "tenants.name": "Name",
        "tenants.numbers": "Dialled numbers",
        "tenants.users": "Accounts",
        "tenants.add": "New tenant",
        "tenants.create": "Create tenant",
        "tenants.number": "Number",
        "tenants.add_number": "Add number",
        "tenants.none": "No tenants yet.",
        "tenants.centre_numbers": "The centre's own numbers",
        "tenants.done.tenant": "Tenant {name} created.",
        "tenants.done.number": "Number {name} now reaches this tenant.",
        "tenants.done.user": "Account {name} created.",
        "rep.talk_time": "Talk time",
        "rep.pauses": "Pauses",
        "rep.pause_time": "Paused",
        "rep.operators_note": (
            "AHT: mean talk time of finished calls (no after-call work is logged). Pauses from "
            "the agent state log: from a pause to the next log-in, log-out or unpause."
        ),
        "unit.s": "s",
        # operator page (dashboard/routes/operator_pages.py)
        "opp.title": "Operator",
        "opp.open": "Open",
        "opp.my_state": "My state",
        "opp.queues": "Queues",
        "opp.queues_to_log_in": "Queues to log in to",
        "opp.log_in": "Log in",
        "opp.log_out": "Log out",
        "opp.pause": "Pause",
        "opp.unpause": "Resume",
        "opp.done": "Done",
        "opp.current_call": "Current call",
        "opp.no_call": "No call right now.",
        "opp.problem": "Problem",
        "opp.waited": "Waited",
        "opp.talking": "Talking",
        "opp.open_callbacks": "Open callbacks for this number",
        "opp.no_open_callbacks": "None.",
        "opp.closed_by_call": "closed: the resident reached you",
        "opp.previous": "Previous calls",
        "opp.no_previous": "First call from this number.",
        "opp.disposition_for": "For call",
        "opp.no_last_call": "No answered call yet.",
        "opp.category": "Category",
        "opp.note": "Note",
        "opp.callout": "A callout request was created",
        "opp.save": "Save",
        "opp.saved": "Saved",
        "pause.break": "break",
        "pause.lunch": "lunch",
        "pause.after_call_work": "after-call work",
        "pause.training": "training",
        "pause.meeting": "meeting",
        "pause.technical": "technical problem",
        "disp.consultation": "consultation",
        "disp.request_registered": "request registered",
        "disp.emergency_dispatched": "emergency crew sent",
        "disp.transferred": "transferred",
        "disp.complaint": "complaint",
        "disp.repeat_call": "repeat call",
        "disp.wrong_number": "wrong number",
        "disp.other": "other",
        # callback list page (dashboard/routes/callback_pages.py)
        "cbp.title": "Callbacks",
        "cbp.by": "by",
        "cbp.who": "Say which operator you are to claim and call.",
        "cbp.mine": "My claimed entries",
        "cbp.none_mine": "You hold no entries.",
        "cbp.queue": "Open queue",
        "cbp.due": "due",
        "cbp.overdue": "overdue",
        "cbp.next_try": "Next try",
        "cbp.claim_col": "Claim",
        "cbp.claimed_by": "claimed by {who}",
        "cbp.mine_until": "mine until {until}",
        "cbp.dialling": "being dialled",
        "cbp.last": "last: {outcome}",
        "cbp.claim": "Claim",
        "cbp.release": "Release",
        "cbp.call": "Call",
        "cbp.history": "History",
        "cbp.outcome": "Outcome",
        "cbp.retry_at": "Call again at",
        "cbp.record": "Record",
        "cbp.calling": "Calling back",
        "cbp.placing": "placing the call…",
        "cbp.stage.operator_ringing": "your phone is ringing — answer it",
        "cbp.stage.resident_ringing": "the resident's phone is ringing",
        "cbp.stage.connected": "connected",
        "cbp.stage.ended": "call over",
        "cbp.refused": "not dialled: outside the numbering plan ({reason})",
        "cbp.call_outcome.callback_answered": "the resident answered; record the outcome",
        "cbp.call_outcome.callback_no_answer": "no answer (a retry is scheduled)",
        "cbp.call_outcome.callback_busy": "busy (a retry is scheduled)",
        "cbp.call_outcome.callback_failed": "the call failed",
        "cbp.call_outcome.callback_operator_no_answer": "your phone did not answer",
        "cbo.reached": "reached, resolved",
        "cbo.no_answer": "no answer",
        "cbo.busy": "busy",
        "cbo.wrong_number": "wrong number",
        "cbo.retry": "call again at a time",
        # call detail: playback (dashboard/routes/audio.py)
        "audio.title": "Recordings",
        "audio.voicemail": "Voicemail",
        "audio.recording": "Call recording",
        "audio.utterance": "What the caller said to the menu",
        "audio.download": "Download",
        "audio.missing": "The file is missing on the server.",
        "audio.deleted": "Deleted by retention (older than the settings keep).",
        # incidents page (dashboard/routes/incident_pages.py)
        "inc.title": "Incidents",
        "inc.current": "Announced now",
        "inc.none": "No incident is announced.",
        "inc.recent": "Recently ended",
        "inc.none_ended": "No ended incidents.",
        "inc.new": "New incident",
        "inc.category": "Problem",
        "inc.areas": "Areas",
        "inc.areas_hint": "comma-separated; empty: the whole city",
        "inc.whole_city": "whole city",
        "inc.until": "Expected end",
        "inc.until_hint": "HH:MM or YYYY-MM-DD HH:MM, {zone} time; empty: unknown",
        "inc.messages": "What callers hear",
        "inc.message_ru": "Message in Russian",
        "inc.message_en": "Message in English",
        "inc.heard": "Heard",
        "inc.hung_up_after": "Then hung up",
        "inc.effect_hint": "Heard: calls that heard the announcement. Then hung up: of those, "
        "callers who hung up right after it (they did not need a queue place).",
        "inc.create": "Announce",
        "inc.end": "End now",
        "inc.ended_at": "Ended",
        "inc.created": "Incident {id} announced.",
        "inc.unspoken": "Its announcement could not be spoken; put recordings at "
        "recordings/prompts/<lang>/incident_{id}.wav",
        "inc.ended": "Incident {id} ended.",
        "inc.fix": "The incident was not created: fix the marked fields.",
        "inc.state.active": "active",
        "inc.state.expired": "past its end",
        "inc.state.ended": "ended",
        "inc.err.category": "Choose a problem from the list.",
        "inc.err.messages": "Write what callers hear.",
        "inc.err.until_format": "Use HH:MM or YYYY-MM-DD HH:MM.",
        "inc.err.until_past": "This time has already passed.",
        "inc.cat.water": "water",
        "inc.cat.hot_water": "hot water",
        "inc.cat.heating": "heating",
        "inc.cat.electricity": "electricity",
        "inc.cat.lift": "lift",
        "inc.cat.gas": "gas",
        "inc.cat.sewage": "sewage",
        "inc.cat.other": "other",
        # flows page (dashboard/routes/flow_pages.py)
        "flows.title": "Voice-menu flows",
        "flows.server": "FastAGI server",
        "flows.running": "running",
        "flows.not_running": "not running",
        "flows.loaded_at": "Flows last (re)loaded",
        "flows.reload": "Reload now",
        "flows.refused": "Refused at the last load (the server keeps their last good version)",
        "flows.list": "Flows",
        "flows.name": "Name",
        "flows.description": "Description",
        "flows.file": "File",
        "flows.nodes": "Nodes",
        "flows.languages": "Languages",
        "flows.live": "live",
        "flows.not_live": "not loaded",
        "flows.invalid": "the file does not validate",
        "flows.file_gone": "file removed",
        "flows.none": "No flow files.",
        "flows.check": "Check of the current files",
        "flows.key_path": "Key path",
        "flows.problem": "Problem",
        "flows.all_valid": "Every flow file is valid.",
        "flows.result.reloaded": "Reloaded.",
        "flows.result.refused": "Reloaded, but broken files were refused; the server keeps "
        "their last good version.",
        "flows.result.not_running": "The FastAGI server is not running; it loads the flows "
        "when it starts.",
        "flows.result.unconfirmed": "The FastAGI server did not confirm the reload.",
    },
    "ru": {
        "brand": "Горячая линия",
        "nav.today": "Сегодня",
        "nav.calls": "Журнал звонков",
        "nav.operator": "Моя работа",
        "nav.callbacks": "Перезвоны",
        "nav.wallboard": "Табло",
        "nav.reports": "Отчёты",
        "nav.incidents": "Аварии",
        "nav.flows": "Сценарии",
        "search.label": "Номер звонящего",
        "search.button": "Найти",
        "lang.switch": "English",
        # вход (dashboard/routes/login.py)
        "auth.title": "Вход",
        "auth.username": "Имя пользователя",
        "auth.password": "Пароль",
        "auth.remember": "Не выходить (экран-табло без присмотра)",
        "auth.submit": "Войти",
        "auth.failed": "Неверное имя или пароль, или форма устарела. Попробуйте ещё раз.",
        "auth.hint": "Учётные записи создаёт супервизор: hotline users add ИМЯ --role operator",
        "auth.logout": "Выйти",
        "role.supervisor": "супервизор",
        "role.operator": "оператор",
        "role.dispatcher": "диспетчер",
        "role.crew": "бригада",
        "nav.requests": "Заявки",
        "nav.dispatch": "Диспетчер",
        "nav.crew": "Работы бригады",
        "auth.locked": "Слишком много неудачных попыток входа. Попробуйте через {minutes} мин.",
        "nav.admin": "Учётные записи",
        "nav.control_audit": "Управление",
        "control.title": "Управление вызовом",
        "control.mode": "Режим",
        "control.listen": "Слушать",
        "control.whisper": "Подсказывать",
        "control.barge": "Вмешаться",
        "control.monitor": "Позвонить мне",
        "control.to_queue": "Перевести в очередь",
        "control.move": "Перевести абонента",
        "control.move_waiting_from": "Всех ожидающих в",
        "control.move_waiting_to": "в",
        "control.move_waiting": "Перевести",
        "control.hangup": "Завершить вызов",
        "control.hangup_confirm": "Завершить этот вызов для абонента и оператора?",
        "control.audit": "Журнал управления вызовами",
        "control.audit_about": (
            "Все действия супервизоров с вызовами и операторами: кто, когда, что"
            " и с каким результатом."
        ),
        "control.by": "Кто",
        "control.action": "Действие",
        "control.call": "Вызов",
        "control.target": "Цель",
        "control.result": "Результат",
        "control.no_actions": "Действий пока не было.",
        "admin.users": "Учётные записи",
        "admin.tokens": "API-токены",
        "admin.role": "Роль",
        "admin.linked": "Оператор из состава",
        "admin.last_login": "Последний вход",
        "admin.actions": "Действия",
        "admin.no_operator": "— нет —",
        "admin.link": "Привязать",
        "admin.active": "активна",
        "admin.disabled": "отключена",
        "admin.disable": "Отключить",
        "admin.enable": "Включить",
        "admin.generate_hint": "пусто: сгенерировать",
        "admin.reset_password": "Задать новый пароль",
        "admin.add_user": "Новая учётная запись",
        "admin.password_hint": "не короче {min} символов; оставьте пустым, чтобы сгенерировать",
        "admin.create": "Создать",
        "admin.shown.created": "Учётная запись {name} создана. Её пароль:",
        "admin.shown.password": "Новый пароль {name}:",
        "admin.shown.token": "API-токен {name}:",
        "admin.shown_once": "Показывается один раз: скопируйте сейчас. Хранится только хеш.",
        "admin.done.created": "Учётная запись {name} создана.",
        "admin.done.password": "Пароль {name} изменён; её сеансы завершены.",
        "admin.done.disabled": "Учётная запись {name} отключена; её сеансы завершены.",
        "admin.done.enabled": "Учётная запись {name} включена.",
        "admin.done.linked": "Оператор для {name} сохранён.",
        "admin.done.revoked": "API-токен {name} отозван.",
        "admin.done.lifted": (
            "Блокировка {name} снята; Asterisk пустит адрес через несколько секунд."
        ),
        "admin.done.not_banned": "{name} не заблокирован.",
        "admin.security": "Блокировки SIP",
        "admin.security_about": (
            "Адреса, с которых слишком часто ошибались при входе по SIP, на время не"
            " принимаются (настройки sip_ban_*). Адреса оператора связи не блокируются никогда."
        ),
        "admin.ban_address": "Адрес",
        "admin.ban_reason": "Причина",
        "admin.ban_failures": "{count} × {reason}",
        "admin.ban_since": "Заблокирован",
        "admin.ban_until": "До",
        "admin.ban_lift": "Снять",
        "admin.no_bans": "Заблокированных адресов нет.",
        "admin.token_name": "Название",
        "admin.token_name_hint": "кто им пользуется, например wallboard-hall",
        "admin.token_start": "Начало",
        "admin.created": "Создан",
        "admin.last_used": "Последнее использование",
        "admin.never": "никогда",
        "admin.revoked_at": "отозван {at}",
        "admin.revoke": "Отозвать",
        "admin.no_tokens": "API-токенов нет.",
        "admin.add_token": "Новый API-токен",
        "admin.create_token": "Создать токен",
        "admin.token_use": "Передавайте его в заголовке Authorization: Bearer TOKEN.",
        "account.err.invalid": "Ввод отклонён.",
        "account.err.password_short": "Пароль должен быть не короче {min} символов.",
        "account.err.password_long": "Пароль слишком длинный.",
        "account.err.username": (
            "Имя: 1-64 латинских букв, цифр и . _ @ -, начиная с буквы или цифры."
        ),
        "account.err.role": "Неизвестная роль.",
        "account.err.no_operator": "В составе нет оператора с SIP-логином {login}.",
        "account.err.user_exists": "Учётная запись {name} уже есть.",
        "account.err.no_user": "Учётной записи {name} нет.",
        "account.err.token_name": "Название токена: не длиннее 64 символов.",
        "account.err.no_token": "API-токена {id} нет.",
        "account.err.self_disable": "Нельзя отключить собственную учётную запись.",
        "home.today": "Звонки сегодня",
        "home.from": "Звонки с номера",
        "home.no_calls": "Звонков пока нет.",
        "home.callbacks": "Ожидают обратного звонка",
        "home.no_callbacks": "Обратных звонков не ждёт никто.",
        "home.live": "В реальном времени — обновлено",
        "home.offline": "Нет связи с сервером; повторяем…",
        "col.time": "Время",
        "col.started": "Начало",
        "col.number": "Номер",
        "col.name": "Имя",
        "col.menu": "Меню",
        "col.queue": "Очередь",
        "col.intent": "Тема",
        "col.outcome": "Итог",
        "col.operator": "Оператор",
        "col.wait_talk": "Ожидание / разговор",
        "col.since": "С",
        "col.reason": "Причина",
        "col.attempts": "Попытки",
        "col.updated": "Обновлено",
        "col.stage": "Этап",
        "col.in_stage": "На этапе",
        "col.state": "Состояние",
        "col.in_state": "В состоянии",
        "in_progress": "идёт",
        "calls.title": "Журнал звонков",
        "calls.filter": "Показать",
        "calls.reset": "Сбросить",
        "calls.date_from": "С",
        "calls.date_to": "По",
        "calls.any": "любой",
        "calls.found": "Найдено звонков: {count}",
        "calls.none": "Подходящих звонков нет.",
        "calls.export": "Выгрузить CSV",
        "calls.prev": "← Новее",
        "calls.next": "Старше →",
        "calls.page": "Страница {page} из {pages}",
        "calls.bad_date": "Даты в формате ГГГГ-ММ-ДД.",
        "call.title": "Звонок {id}",
        "call.caller_name": "Имя звонящего",
        "call.dialled": "Набранный номер",
        "call.tenant": "Компания",
        "call.tenant_centre": "центр",
        "call.tenant_source.number": "по набранному номеру",
        "call.tenant_source.phone": "по зарегистрированному телефону",
        "call.tenant_source.earlier_call": "по прошлому звонку",
        "call.tenant_source.keypad": "по коду дома, набранному звонящим",
        "call.tenant_source.unknown": "не найдена: передан координатору",
        "call.tenant_source.centre": "номер центра",
        "call.answered": "Ответ",
        "call.ended": "Окончание",
        "call.menu_choice": "Выбор в меню",
        "call.intent_confidence": "Уверенность распознавания",
        "call.transcript": "Расшифровка",
        "call.utterance": "Запись фразы",
        "call.disposition": "Результат обработки",
        "call.disposition_history": "История результата обработки",
        "call.disposition_for": "Оператор",
        "call.disposition_by": "Кто сохранил",
        "call.hangup": "Завершение",
        "call.timeline": "Хронология",
        "call.event": "Событие",
        "call.details": "Подробности",
        "call.no_events": "Событий нет.",
        "call.back": "← Журнал звонков",
        "wb.title": "Табло",
        "wb.queues": "Очереди",
        "wb.waiting": "Ждут",
        "wb.longest": "Дольше всех",
        "wb.offered": "Поступило",
        "wb.answered": "Принято",
        "wb.abandoned": "Брошено",
        "wb.sl": "Уровень обслуживания",
        "wb.asa": "ССО",
        "wb.aht": "ССР",
        "wb.operators": "Операторы",
        "wb.no_operators": "В списке нет операторов.",
        "wb.calls": "Текущие звонки",
        "wb.no_calls": "Сейчас звонков нет.",
        "wb.alerts": "Тревоги",
        "wb.no_alerts": "Тревог нет.",
        "wb.live": "В реальном времени",
        "wb.connecting": "Подключение…",
        "wb.reconnecting": "Связь потеряна; переподключаемся…",
        "wb.redis_down": "Живые события недоступны (Redis); данные из журнала звонков",
        "wb.stale": "Живые данные УСТАРЕЛИ (обновлены {age} назад); данные из журнала звонков",
        "wb.stale_unknown": (
            "Живые данные УСТАРЕЛИ (нет обновлений от маршрутизатора); данные из журнала звонков"
        ),
        "wb.updated": "обновлено",
        "wb.definitions": "Определения",
        "wb.def.offered": "Поступило: звонки, вставшие в очередь сегодня (с местной полуночи).",
        "wb.def.sl": (
            "Уровень обслуживания: звонки, принятые не позже {seconds} с после постановки в "
            "очередь, делённые на поступившие звонки с известной судьбой (приняты, завершены "
            "или ждут дольше {seconds} с). Цель {target}%."
        ),
        "wb.def.asa": "ССО (средняя скорость ответа): среднее ожидание принятых звонков.",
        "wb.def.aht": "ССР (среднее время разговора): средний разговор завершённых звонков.",
        "wb.alert.service_level": (
            "Очередь {queue}: уровень обслуживания {value}% ниже цели {threshold}%"
        ),
        "wb.alert.queue_waiting": "Очередь {queue}: ждут {value} (порог {threshold})",
        "wb.alert.callbacks_overdue": "Просрочено обратных звонков: {value}",
        "stage.menu": "меню",
        "stage.queue": "в очереди",
        "stage.talking": "разговор",
        "op.unknown": "неизвестно",
        "op.talking": "разговор",
        "op.available": "свободен",
        "op.paused": "пауза",
        "op.logged_out": "не в системе",
        "op.ringing": "звонок",
        "op.wrapup": "поствызывная обработка",
        "op.busy": "на звонке",
        "op.free": "свободен",
        "op.offline": "телефон не в сети",
        "rep.title": "Отчёты",
        "rep.by": "Группировка",
        "rep.by_day": "по дням",
        "rep.by_hour": "по часам суток",
        "rep.by_day_title": "Звонки по дням",
        "rep.by_hour_title": "Звонки по часам суток",
        "rep.by_queue": "По очередям",
        "rep.by_intent": "По темам",
        "rep.total": "Звонков",
        "rep.by_operator": "По операторам",
        "rep.by_tenant": "По управляющим компаниям",
        "rep.all_tenants": "все компании",
        "rep.centre": "только центр",
        "col.tenant": "Компания",
        "nav.tenants": "Компании",
        "tenants.title": "Управляющие компании",
        "tenants.slug": "Краткое имя",
        "tenants.name": "Название",
        "tenants.numbers": "Номера",
        "tenants.users": "Учётные записи",
        "tenants.add": "Новая компания",
        "tenants.create": "Добавить компанию",
        "tenants.number": "Номер",
        "tenants.add_number": "Добавить номер",
        "tenants.none": "Компаний пока нет.",
        "tenants.centre_numbers": "Номера самого центра",
        "tenants.done.tenant": "Компания {name} добавлена.",
        "tenants.done.number": "Номер {name} теперь ведёт в эту компанию.",
        "tenants.done.user": "Учётная запись {name} создана.",
        "rep.talk_time": "Время разговоров",
        "rep.pauses": "Пауз",
        "rep.pause_time": "На паузе",
        "rep.operators_note": (
            "ССР: среднее время разговора завершённых звонков (поствызывная обработка не "
            "учитывается). Паузы из журнала состояний оператора: от паузы до следующего входа, "
            "выхода или снятия паузы."
        ),
        "unit.s": "с",
        "opp.title": "Оператор",
        "opp.open": "Открыть",
        "opp.my_state": "Моё состояние",
        "opp.queues": "Очереди",
        "opp.queues_to_log_in": "Войти в очереди",
        "opp.log_in": "Войти",
        "opp.log_out": "Выйти из очередей",
        "opp.pause": "Пауза",
        "opp.unpause": "Продолжить",
        "opp.done": "Готово",
        "opp.current_call": "Текущий звонок",
        "opp.no_call": "Сейчас звонка нет.",
        "opp.problem": "Проблема",
        "opp.waited": "Ждал",
        "opp.talking": "Разговор",
        "opp.open_callbacks": "Открытые обратные звонки на этот номер",
        "opp.no_open_callbacks": "Нет.",
        "opp.closed_by_call": "закрыт: житель дозвонился до вас",
        "opp.previous": "Прошлые звонки",
        "opp.no_previous": "С этого номера звонят впервые.",
        "opp.disposition_for": "Для звонка",
        "opp.no_last_call": "Принятых звонков пока нет.",
        "opp.category": "Категория",
        "opp.note": "Заметка",
        "opp.callout": "Создана заявка на выезд",
        "opp.save": "Сохранить",
        "opp.saved": "Сохранено",
        "pause.break": "перерыв",
        "pause.lunch": "обед",
        "pause.after_call_work": "обработка после звонка",
        "pause.training": "обучение",
        "pause.meeting": "совещание",
        "pause.technical": "техническая проблема",
        "disp.consultation": "консультация",
        "disp.request_registered": "заявка зарегистрирована",
        "disp.emergency_dispatched": "направлена аварийная бригада",
        "disp.transferred": "переведён",
        "disp.complaint": "жалоба",
        "disp.repeat_call": "повторный звонок",
        "disp.wrong_number": "ошиблись номером",
        "disp.other": "другое",
        "cbp.title": "Обратные звонки",
        "cbp.by": "кем:",
        "cbp.who": "Укажите, какой вы оператор, чтобы брать и звонить.",
        "cbp.mine": "Мои записи",
        "cbp.none_mine": "У вас нет взятых записей.",
        "cbp.queue": "Общая очередь",
        "cbp.due": "срок",
        "cbp.overdue": "просрочено",
        "cbp.next_try": "Следующая попытка",
        "cbp.claim_col": "Взята",
        "cbp.claimed_by": "взял(а) {who}",
        "cbp.mine_until": "моя до {until}",
        "cbp.dialling": "идёт вызов",
        "cbp.last": "последний итог: {outcome}",
        "cbp.claim": "Взять",
        "cbp.release": "Вернуть",
        "cbp.call": "Позвонить",
        "cbp.history": "История",
        "cbp.outcome": "Итог",
        "cbp.retry_at": "Перезвонить в",
        "cbp.record": "Записать",
        "cbp.calling": "Обратный звонок",
        "cbp.placing": "вызов размещается…",
        "cbp.stage.operator_ringing": "звонит ваш телефон — ответьте",
        "cbp.stage.resident_ringing": "звонит телефон жителя",
        "cbp.stage.connected": "соединено",
        "cbp.stage.ended": "звонок окончен",
        "cbp.refused": "не набирается: номер вне плана нумерации ({reason})",
        "cbp.call_outcome.callback_answered": "житель ответил; запишите итог",
        "cbp.call_outcome.callback_no_answer": "нет ответа (повтор назначен)",
        "cbp.call_outcome.callback_busy": "занято (повтор назначен)",
        "cbp.call_outcome.callback_failed": "вызов не удался",
        "cbp.call_outcome.callback_operator_no_answer": "ваш телефон не ответил",
        "cbo.reached": "дозвонились, решено",
        "cbo.no_answer": "нет ответа",
        "cbo.busy": "занято",
        "cbo.wrong_number": "не тот номер",
        "cbo.retry": "перезвонить в указанное время",
        "audio.title": "Записи",
        "audio.voicemail": "Голосовое сообщение",
        "audio.recording": "Запись разговора",
        "audio.utterance": "Что звонящий сказал меню",
        "audio.download": "Скачать",
        "audio.missing": "Файла на сервере нет.",
        "audio.deleted": "Удалено по сроку хранения.",
        "inc.title": "Аварии",
        "inc.current": "Объявляются сейчас",
        "inc.none": "Сейчас ничего не объявляется.",
        "inc.recent": "Недавно завершённые",
        "inc.none_ended": "Завершённых аварий нет.",
        "inc.new": "Новая авария",
        "inc.category": "Проблема",
        "inc.areas": "Районы",
        "inc.areas_hint": "через запятую; пусто — весь город",
        "inc.whole_city": "весь город",
        "inc.until": "Ожидаемое окончание",
        "inc.until_hint": "ЧЧ:ММ или ГГГГ-ММ-ДД ЧЧ:ММ, время {zone}; пусто — неизвестно",
        "inc.messages": "Что слышат звонящие",
        "inc.message_ru": "Сообщение на русском",
        "inc.message_en": "Сообщение на английском",
        "inc.heard": "Услышали",
        "inc.hung_up_after": "Затем положили трубку",
        "inc.effect_hint": "Услышали — звонки, в которых прозвучало объявление. Затем положили "
        "трубку — те из них, кто закончил звонок сразу после него (им не понадобилась очередь).",
        "inc.create": "Объявить",
        "inc.end": "Завершить",
        "inc.ended_at": "Завершена",
        "inc.created": "Авария {id} объявлена.",
        "inc.unspoken": "Объявление не удалось озвучить; положите записи в "
        "recordings/prompts/<lang>/incident_{id}.wav",
        "inc.ended": "Авария {id} завершена.",
        "inc.fix": "Авария не создана: исправьте отмеченные поля.",
        "inc.state.active": "объявляется",
        "inc.state.expired": "срок прошёл",
        "inc.state.ended": "завершена",
        "inc.err.category": "Выберите проблему из списка.",
        "inc.err.messages": "Напишите, что услышат звонящие.",
        "inc.err.until_format": "Укажите ЧЧ:ММ или ГГГГ-ММ-ДД ЧЧ:ММ.",
        "inc.err.until_past": "Это время уже прошло.",
        "inc.cat.water": "вода",
        "inc.cat.hot_water": "горячая вода",
        "inc.cat.heating": "отопление",
        "inc.cat.electricity": "электричество",
        "inc.cat.lift": "лифт",
        "inc.cat.gas": "газ",
        "inc.cat.sewage": "канализация",
        "inc.cat.other": "другое",
        "flows.title": "Сценарии голосового меню",
        "flows.server": "Сервер FastAGI",
        "flows.running": "работает",
        "flows.not_running": "не запущен",
        "flows.loaded_at": "Сценарии (пере)загружены",
        "flows.reload": "Перезагрузить",
        "flows.refused": "Отклонены при последней загрузке (сервер оставил их последнюю "
        "исправную версию)",
        "flows.list": "Сценарии",
        "flows.name": "Имя",
        "flows.description": "Описание",
        "flows.file": "Файл",
        "flows.nodes": "Узлов",
        "flows.languages": "Языки",
        "flows.live": "работает",
        "flows.not_live": "не загружен",
        "flows.invalid": "файл не проходит проверку",
        "flows.file_gone": "файл удалён",
        "flows.none": "Файлов сценариев нет.",
        "flows.check": "Проверка текущих файлов",
        "flows.key_path": "Путь к ключу",
        "flows.problem": "Проблема",
        "flows.all_valid": "Все файлы сценариев исправны.",
        "flows.result.reloaded": "Перезагружено.",
        "flows.result.refused": "Перезагружено, но неисправные файлы отклонены; сервер оставил "
        "их последнюю исправную версию.",
        "flows.result.not_running": "Сервер FastAGI не запущен; он загрузит сценарии при старте.",
        "flows.result.unconfirmed": "Сервер FastAGI не подтвердил перезагрузку.",
    },
}


for _lang, _texts in ANALYTICS_MESSAGES.items():
    MESSAGES[_lang].update(_texts)
for _lang, _texts in REQUEST_MESSAGES.items():
    MESSAGES[_lang].update(_texts)


def translate(lang: str, key: str, **values: Any) -> str:
    text = MESSAGES.get(lang, {}).get(key) or MESSAGES[FALLBACK].get(key) or key
    return text.format(**values) if values else text


def translator(lang: str) -> Translate:
    def t(key: str, **values: Any) -> str:
        return translate(lang, key, **values)

    return t


def from_accept_language(header: str) -> str | None:
    """The first of our languages in an Accept-Language header, honouring q-values."""
    choices: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and quality > 0:
            choices.append((-quality, index, primary))
    return min(choices)[2] if choices else None


def pick_language(
    query: str | None, cookie: str | None, accept: str | None, default: str
) -> tuple[str, bool]:
    """(language, whether to remember it in the cookie)."""
    if query in LANGUAGES:
        assert query is not None
        return query, query != cookie
    if cookie in LANGUAGES:
        assert cookie is not None
        return cookie, False
    from_header = from_accept_language(accept or "")
    if from_header:
        return from_header, False
    return (default if default in LANGUAGES else FALLBACK), False


def request_language(request: Request, default: str) -> tuple[str, bool]:
    return pick_language(
        request.query_params.get("lang"),
        request.cookies.get(COOKIE),
        request.headers.get("accept-language"),
        default,
    )


def remember(response: Response, lang: str) -> None:
    # Not HttpOnly-sensitive (a UI preference), but keep it same-site and out of scripts anyway.
    response.set_cookie(
        COOKIE, lang, max_age=365 * 24 * 3600, httponly=True, samesite="lax", path="/"
    )


def render(
    templates: Jinja2Templates,
    request: Request,
    name: str,
    context: Mapping[str, Any],
    default_language: str,
    *,
    status_code: int = 200,
) -> Response:
    """A template response with `t` (the translator) and `lang` in its context."""
    lang, set_cookie = request_language(request, default_language)
    other = "en" if lang == "ru" else "ru"
    response = templates.TemplateResponse(
        request=request,
        name=name,
        context={
            **context,
            "t": translator(lang),
            "lang": lang,
            "other_lang": other,
            # The same page in the other language (relative: no host from a Host header).
            "lang_url": _with_lang(request, other),
        },
        status_code=status_code,
    )
    if set_cookie:
        remember(response, lang)
    return response


def _with_lang(request: Request, lang: str) -> str:
    url = request.url.include_query_params(lang=lang)
    return f"{url.path}?{url.query}"


def _context_language(ctx: Any) -> str:
    """The language of the page being rendered: `lang` if the route set it, else the request's."""
    lang = ctx.get("lang")
    if lang in LANGUAGES:
        return str(lang)
    request = ctx.get("request")
    if request is None:
        return FALLBACK
    default = getattr(getattr(request.app.state, "dashboard", None), "settings", None)
    return request_language(request, getattr(default, "default_language", FALLBACK))[0]


def install(env: Environment) -> None:
    """Globals for templates rendered without `render` (pages other modules add): base.html
    then still finds its texts, the language and the switch link."""

    @pass_context
    def t(ctx: Any, key: str, **values: Any) -> str:
        return translate(_context_language(ctx), key, **values)

    @pass_context
    def ui_lang(ctx: Any) -> str:
        return _context_language(ctx)

    @pass_context
    def ui_other_lang(ctx: Any) -> str:
        return "en" if _context_language(ctx) == "ru" else "ru"

    @pass_context
    def ui_lang_url(ctx: Any) -> str:
        request = ctx.get("request")
        other = "en" if _context_language(ctx) == "ru" else "ru"
        return _with_lang(request, other) if request is not None else f"?lang={other}"

    env.globals.update(t=t, ui_lang=ui_lang, ui_other_lang=ui_other_lang, ui_lang_url=ui_lang_url)
