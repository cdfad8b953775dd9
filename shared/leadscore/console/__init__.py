"""`leadscore console`: a local, read-only web app over a stack's lead API (never in the Lambda layer).

- `api`: the lead API client, each request SigV4-signed with the user's own AWS credentials.
- `app`: the Flask app (pages, security headers, loopback-only Host check).
- `chart`: the score-over-time chart, drawn on the server as SVG (no script in the page).
- `snapshot`: the demo's tables saved to a file and restored into a local stack (`--demo`).
"""
