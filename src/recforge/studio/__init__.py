"""recforge Studio: server-rendered pages over run directories, a model stream and a live service.

Every page is plain HTML with inline SVG charts (no JavaScript, no CDN), so it renders on a machine with
no network. `recforge ui` serves it; `app.create_studio` builds the FastAPI app.
"""
