"""Texts of the service-request report page (dashboard/routes/request_reports.py), merged into
dashboard/i18n.py's MESSAGES like dashboard/i18n_analytics.py."""

from __future__ import annotations

MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "nav.request_report": "Requests report",
        "rr.title": "Service requests report",
        "rr.period": "Requests created from {first} to {last}",
        "rr.total": "All requests",
        "rr.by_category": "By category",
        "rr.by_district": "By district",
        "rr.by_crew": "By crew",
        "rr.requests": "Requests",
        "rr.assigned": "Assigned",
        "rr.assign_hours": "To assign, h (mean / median)",
        "rr.finished": "Finished",
        "rr.close_hours": "To close, h (mean / median)",
        "rr.sla_share": "Within SLA",
        "rr.overdue_open": "Open, overdue",
        "rr.reopened": "Reopened",
        "rr.reopened_rate": "Reopened rate",
        "rr.csv": "Download CSV",
        "rr.none": "No requests were created in this period.",
        "rr.defs": (
            "Within SLA: finished by the deadline, out of every request finished or open past"
            " its deadline. Reopened rate: reopened at least once, out of the requests ever"
            " finished."
        ),
    },
    "ru": {
        "nav.request_report": "Отчёт по заявкам",
        "rr.title": "Отчёт по заявкам",
        "rr.period": "Заявки, созданные с {first} по {last}",
        "rr.total": "Все заявки",
        "rr.by_category": "По категориям",
        "rr.by_district": "По районам",
        "rr.by_crew": "По бригадам",
        "rr.requests": "Заявок",
        "rr.assigned": "Назначено",
        "rr.assign_hours": "До назначения, ч (среднее / медиана)",
        "rr.finished": "Выполнено",
        "rr.close_hours": "До закрытия, ч (среднее / медиана)",
        "rr.sla_share": "В срок",
        "rr.overdue_open": "Открыто, просрочено",
        "rr.reopened": "Открыто повторно",
        "rr.reopened_rate": "Доля повторно открытых",
        "rr.csv": "Скачать CSV",
        "rr.none": "За этот период заявок не было.",
        "rr.defs": (
            "В срок: выполнено до крайнего срока, из всех выполненных и открытых с истёкшим"
            " сроком. Доля повторно открытых: открытые заново хотя бы раз, из всех когда-либо"
            " выполненных."
        ),
    },
}
