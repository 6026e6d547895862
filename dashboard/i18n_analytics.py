"""Texts of the supervisor analytics pages (abandoned callers, staffing forecast), merged into
dashboard/i18n.py's MESSAGES: kept apart so the pages of one feature carry their words."""

from __future__ import annotations

MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "ab.title": "Abandoned callers",
        "ab.count": "Callers not answered",
        "ab.called_back": "Called back",
        "ab.caller": "Caller",
        "ab.waited": "Waited",
        "ab.callback": "Callback entry",
        "ab.called_back_at": "Called back at",
        "ab.none": "Nobody was left unanswered in this period.",
        "st.title": "Staffing forecast",
        "st.weeks": "Weeks of history",
        "st.target_asa": "Average wait at most, s",
        "st.target_sl": "Service level %/s",
        "st.max_occupancy": "Max occupancy",
        "st.basis": "From the calls of {since} to {until} (Erlang C).",
        "st.sl": "Target: {share}% answered within {seconds} s.",
        "st.asa": "Target: average wait at most {seconds} s.",
        "st.occ": "Operators at most {share}% busy.",
        "st.needed": "Operators needed",
        "st.shortfall": "Shortfall",
        "st.logged_in": "Logged in (past weeks)",
        "st.gap": "Gap",
        "st.time": "Time",
        "st.calls": "Calls",
        "st.table": "Quarter hours",
        "st.chart": "Operators needed and logged in per quarter hour, {day}",
        "st.day_facts": (
            "{calls} calls expected, peak {peak} operators, {short} quarter hours short"
        ),
        "st.weekdays": "Mon,Tue,Wed,Thu,Fri,Sat,Sun",
        "rep.more": "More:",
        "rep.sl_title": "Service level over time",
        "rep.sl_note": "Share of queue callers answered within the threshold, per bar (%).",
        "rep.by_direction": "By direction",
        "rep.direction": "Direction",
        "rep.direction_note": (
            "Queue, service-level and operator figures count inbound callers only;"
            " an operator's callback is not an answered call."
        ),
        "dir.inbound": "Inbound",
        "dir.callback": "Callback (outbound)",
        "dir.internal": "Internal",
        "ag.title": "Agent sessions",
        "ag.day": "Day",
        "ag.logins": "Log-ins / outs",
        "ag.logged_in": "Logged in",
        "ag.ready": "Ready",
        "ag.wrapup": "Wrap-up",
        "ag.callbacks": "Calls out (callbacks)",
        "ag.missed": "Missed",
        "ag.occupancy": "Occupancy",
        "ag.reasons": "Pause reasons",
        "ag.period": "Over the period",
        "ag.by_day": "Per day",
        "ag.none": "No operator was logged in or took a call in this period.",
        "ag.note": (
            "Ready: logged in, not paused, not on a call or in wrap-up. Occupancy: time on calls"
            " and wrap-up over logged-in time not paused. Missed: rang and not answered."
        ),
    },
    "ru": {
        "ab.title": "Неотвеченные звонки",
        "ab.count": "Не дождались ответа",
        "ab.called_back": "Перезвонили",
        "ab.caller": "Звонивший",
        "ab.waited": "Ждал",
        "ab.callback": "Заявка на перезвон",
        "ab.called_back_at": "Перезвонили в",
        "ab.none": "За этот период все дождались ответа.",
        "st.title": "Прогноз штата",
        "st.weeks": "Недель истории",
        "st.target_asa": "Среднее ожидание не более, с",
        "st.target_sl": "Уровень сервиса %/с",
        "st.max_occupancy": "Макс. загрузка",
        "st.basis": "По звонкам с {since} по {until} (Эрланг C).",
        "st.sl": "Цель: {share}% отвечены за {seconds} с.",
        "st.asa": "Цель: среднее ожидание не более {seconds} с.",
        "st.occ": "Операторы заняты не более {share}% времени.",
        "st.needed": "Нужно операторов",
        "st.shortfall": "Нехватка",
        "st.logged_in": "На линии (прошлые недели)",
        "st.gap": "Разница",
        "st.time": "Время",
        "st.calls": "Звонков",
        "st.table": "По четвертям часа",
        "st.chart": "Нужно и было операторов по четвертям часа, {day}",
        "st.day_facts": (
            "ожидается {calls} звонков, пик {peak} операторов, нехватка в {short} четвертях часа"
        ),
        "st.weekdays": "Пн,Вт,Ср,Чт,Пт,Сб,Вс",
        "rep.more": "Ещё:",
        "rep.sl_title": "Уровень сервиса по времени",
        "rep.sl_note": "Доля звонивших в очередь, получивших ответ в пределах порога, %.",
        "rep.by_direction": "По направлению",
        "rep.direction": "Направление",
        "rep.direction_note": (
            "Показатели очередей, уровня сервиса и операторов считают только входящие звонки;"
            " перезвон оператора не считается отвеченным звонком."
        ),
        "dir.inbound": "Входящие",
        "dir.callback": "Перезвон (исходящие)",
        "dir.internal": "Внутренние",
        "ag.title": "Смены операторов",
        "ag.day": "День",
        "ag.logins": "Входы / выходы",
        "ag.logged_in": "На линии",
        "ag.ready": "Свободен",
        "ag.wrapup": "Поствызывная обработка",
        "ag.callbacks": "Исходящие (перезвоны)",
        "ag.missed": "Пропущено",
        "ag.occupancy": "Загрузка",
        "ag.reasons": "Причины пауз",
        "ag.period": "За период",
        "ag.by_day": "По дням",
        "ag.none": "В этот период операторы не входили в систему и не принимали звонков.",
        "ag.note": (
            "Свободен: на линии, не на паузе, не в разговоре и не в поствызывной обработке."
            " Загрузка: время разговоров и обработки к времени на линии без пауз."
            " Пропущено: звонок поступил, но не был принят."
        ),
    },
}
