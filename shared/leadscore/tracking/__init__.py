"""The website itself: a first-party tracking snippet and its collector (`POST /v1/track`).

Modules, along the way a beacon flows:
- `snippet.js` (served at `GET /v1/track.js` by `snippet.py`): the browser side. Page views,
  engaged time on leave (sendBeacon), visits, a random first-party visitor id in localStorage,
  identification when a tagged form is submitted; nothing at all under Do-Not-Track, Global
  Privacy Control or `leadscore('consent', false)`.
- `wire.py`: the beacon's strict schema (the contract between the two sides).
- `sites.py`: which sites may send (the `track` entry of the webhook secret: public key, allowed
  origins), and the origin checks.
- `bots.py`: user agents, headless and automation signatures, prefetches, impossible rates.
- `tokens.py`: the visitor token, an AES-GCM sealed (email, site, visitor) the collector hands the
  browser once it knows who the visitor is, so an identified visitor's views need no read.
- `collector.py`: beacon -> page activity events. Identified visitors' views go to the ledger
  like any event; anonymous ones are parked against the visitor id (IdentityTable, bounded, with
  a retention) and join the lead exactly once when the visitor is identified.

Provenance: a beacon can only say "this browser looked at these pages" (`TRACK_EVENT_TYPES`).
Identity: a browser (`ExternalId` in `WEB_VISITOR_NAMESPACE`) is linked to the email of the last
form submitted in it; views recorded before stay with the lead they joined, later ones follow the
new link, and no email change is ever recorded from a browser.
"""
