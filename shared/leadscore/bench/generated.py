"""A generated lead history shaped like the X Education export, of any size, for `make bench`.

The columns, their levels and rough shares follow `Leads.csv` (`../shared/data/x-education`), and
the outcome comes from a known logistic structure with the export's strongest signals (lead
origin and source, occupation, last activity, time on site, visits, opt-outs) plus two
interactions and a tail of rare levels, so the learner has real work to do. Deterministic for a
seed; written as CSV in blocks, so a history of any size is generated in bounded memory.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

BLOCK_ROWS = 100_000
ID_COLUMN, TARGET_COLUMN = "Prospect ID", "Converted"

# column -> (levels, shares, log-odds each level adds)
# fmt: off
_CATEGORIES: dict[str, tuple[list[str], list[float], list[float]]] = {
    "Lead Origin": (
        ["Landing Page Submission", "API", "Lead Add Form", "Lead Import"],
        [0.53, 0.385, 0.078, 0.007],
        [-0.2, 0.0, 2.4, -0.8],
    ),
    "Lead Source": (
        [
            "Google",
            "Direct Traffic",
            "Olark Chat",
            "Organic Search",
            "Reference",
            "Welingak Website",
            "Referral Sites",
            "Facebook",
            "",
            "bing",
            "Click2call",
            "Press_Release",
        ],
        [0.31, 0.275, 0.19, 0.125, 0.058, 0.015, 0.0135, 0.006, 0.004, 0.0015, 0.001, 0.001],
        [0.0, -0.3, 0.3, -0.1, 1.2, 2.5, -0.4, -0.6, 0.0, -0.5, 0.8, -1.0],
    ),
    "Do Not Email": (["No", "Yes"], [0.92, 0.08], [0.0, -1.0]),
    "Do Not Call": (["No", "Yes"], [0.9998, 0.0002], [0.0, 1.0]),
    "Last Activity": (
        [
            "Email Opened",
            "SMS Sent",
            "Olark Chat Conversation",
            "Page Visited on Website",
            "Converted to Lead",
            "Email Bounced",
            "Email Link Clicked",
            "Form Submitted on Website",
            "",
            "Unreachable",
            "Unsubscribed",
            "Had a Phone Conversation",
        ],
        [0.372, 0.297, 0.106, 0.07, 0.046, 0.035, 0.029, 0.0126, 0.0111, 0.01, 0.0066, 0.0047],
        [0.2, 1.3, -1.0, -0.3, -1.0, -1.2, 0.0, -0.2, 0.0, -0.5, -0.6, 2.0],
    ),
    "Country": (
        ["India", "", "United States", "United Arab Emirates", "Singapore", "Saudi Arabia", "United Kingdom"],
        [0.703, 0.266, 0.0075, 0.0058, 0.0026, 0.0023, 0.0018],
        [0.0, 0.1, -0.2, 0.1, 0.0, -0.3, 0.0],
    ),
    "Specialization": (
        [
            "Select",
            "",
            "Finance Management",
            "Human Resource Management",
            "Marketing Management",
            "Operations Management",
            "Business Administration",
            "IT Projects Management",
            "Supply Chain Management",
            "Banking, Investment And Insurance",
            "Travel and Tourism",
            "Media and Advertising",
            "International Business",
            "Healthcare Management",
            "Hospitality Management",
            "E-COMMERCE",
            "Retail Management",
            "Rural and Agribusiness",
            "E-Business",
            "Services Excellence",
        ],
        [
            0.21,
            0.156,
            0.106,
            0.092,
            0.091,
            0.054,
            0.044,
            0.04,
            0.038,
            0.037,
            0.022,
            0.022,
            0.019,
            0.017,
            0.012,
            0.012,
            0.011,
            0.008,
            0.006,
            0.004,
        ],
        [
            -0.5,
            -0.3,
            0.2,
            0.2,
            0.3,
            0.2,
            0.1,
            0.0,
            0.1,
            0.3,
            -0.1,
            0.0,
            0.0,
            0.3,
            -0.2,
            0.0,
            -0.1,
            0.2,
            0.0,
            0.0,
        ],
    ),
    "How did you hear about X Education": (
        [
            "Select",
            "",
            "Online Search",
            "Word Of Mouth",
            "Student of SomeSchool",
            "Other",
            "Multiple Sources",
        ],
        [0.547, 0.239, 0.087, 0.038, 0.034, 0.02, 0.035],
        [0.0, 0.0, 0.1, 0.2, -0.2, 0.0, 0.0],
    ),
    "What is your current occupation": (
        ["Unemployed", "", "Working Professional", "Student", "Other", "Housewife", "Businessman"],
        [0.606, 0.291, 0.076, 0.023, 0.0017, 0.0011, 0.0012],
        [0.0, -1.0, 2.5, -0.4, 0.5, 2.0, 0.5],
    ),
    "What matters most to you in choosing a course": (
        ["Better Career Prospects", "", "Flexibility & Convenience", "Other"],
        [0.706, 0.293, 0.0005, 0.0005],
        [0.3, 0.0, 0.0, 0.0],
    ),
    "City": (
        [
            "Mumbai",
            "Select",
            "",
            "Thane & Outskirts",
            "Other Cities",
            "Other Cities of Maharashtra",
            "Other Metro Cities",
            "Tier II Cities",
        ],
        [0.348, 0.244, 0.154, 0.081, 0.074, 0.049, 0.041, 0.009],
        [0.0, -0.2, -0.1, 0.1, 0.0, 0.1, 0.0, -0.3],
    ),
    "A free copy of Mastering The Interview": (["No", "Yes"], [0.687, 0.313], [0.0, -0.1]),
    "Last Notable Activity": (
        [
            "Modified",
            "Email Opened",
            "SMS Sent",
            "Page Visited on Website",
            "Olark Chat Conversation",
            "Email Link Clicked",
            "Email Bounced",
            "Unsubscribed",
            "Unreachable",
            "Had a Phone Conversation",
        ],
        [0.368, 0.306, 0.236, 0.032, 0.02, 0.019, 0.0065, 0.005, 0.0035, 0.004],
        [-0.4, 0.2, 0.6, -0.1, -0.4, 0.0, -0.4, -0.3, 0.3, 1.5],
    ),
}
_RARE_YES = ("Search", "Magazine", "Newspaper Article", "X Education Forums", "Newspaper",
             "Digital Advertisement", "Through Recommendations")
# fmt: on
HEADER = [
    ID_COLUMN,
    "Lead Origin",
    "Lead Source",
    "Do Not Email",
    "Do Not Call",
    TARGET_COLUMN,
    "TotalVisits",
    "Total Time Spent on Website",
    "Page Views Per Visit",
    "Last Activity",
    "Country",
    "Specialization",
    "How did you hear about X Education",
    "What is your current occupation",
    "What matters most to you in choosing a course",
    *_RARE_YES,
    "City",
    "A free copy of Mastering The Interview",
    "Last Notable Activity",
]
BASE_LOGIT = -1.5


def _block(rng: np.random.Generator, first: int, rows: int) -> dict[str, list[str] | np.ndarray]:
    columns: dict[str, list[str] | np.ndarray] = {ID_COLUMN: [f"gen-{first + i:09d}" for i in range(rows)]}
    logit = np.full(rows, BASE_LOGIT)
    chosen: dict[str, np.ndarray] = {}
    for column, (levels, shares, effects) in _CATEGORIES.items():
        p = np.asarray(shares) / np.sum(shares)
        index = rng.choice(len(levels), size=rows, p=p)
        chosen[column] = index
        columns[column] = np.asarray(levels, dtype=object)[index]
        logit += np.asarray(effects)[index]
    api_or_chat = (columns["Lead Origin"] == "API") & (columns["Lead Source"] == "Olark Chat")
    never = api_or_chat | (rng.random(rows) < 0.12)  # leads that never visited the website
    visits = np.where(never, 0, 1 + rng.geometric(0.28, size=rows))
    seconds = np.where(never, 0, np.minimum(np.round(rng.lognormal(6.2, 0.9, size=rows)), 2272))
    pages = np.where(never, 0.0, np.round(np.clip(rng.gamma(2.6, 1.1, size=rows), 1, 16), 2))
    logit += 1.7 * np.minimum(seconds, 1600) / 1000 - 0.25 + 0.03 * np.minimum(visits, 20) - 0.05 * pages
    # Two interactions a main-effects model cannot carry alone.
    logit += np.where((columns["Lead Origin"] == "API") & (seconds > 800), 0.6, 0.0)
    logit -= np.where(
        (columns["What is your current occupation"] == "") & (columns["Last Activity"] == "SMS Sent"),
        0.7,
        0.0,
    )
    missing_visits = rng.random(rows) < 0.015
    columns["TotalVisits"] = np.where(missing_visits, "", visits.astype(str)).astype(object)
    columns["Total Time Spent on Website"] = seconds.astype(np.int64).astype(str).astype(object)
    pages_text = np.array([f"{v:g}" for v in pages], dtype=object)
    columns["Page Views Per Visit"] = np.where(missing_visits, "", pages_text)
    for column in _RARE_YES:
        columns[column] = np.where(rng.random(rows) < 0.001, "Yes", "No").astype(object)
    converted = rng.random(rows) < 1.0 / (1.0 + np.exp(-logit))
    columns[TARGET_COLUMN] = converted.astype(int).astype(str).astype(object)
    return columns


def write_history(path: Path, leads: int, seed: int = 12) -> int:
    """`leads` generated leads written to `path` (CSV); returns how many."""
    import polars as pl

    rng = np.random.default_rng(seed)
    with path.open("wb") as handle:
        for first in range(0, leads, BLOCK_ROWS):
            rows = min(BLOCK_ROWS, leads - first)
            block = _block(rng, first, rows)
            frame = pl.DataFrame(
                {name: pl.Series(name, list(block[name]), dtype=pl.String) for name in HEADER}
            )
            frame.write_csv(handle, include_header=first == 0)
    return leads
