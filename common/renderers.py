from rest_framework.renderers import JSONRenderer


class EnvelopeJSONRenderer(JSONRenderer):
    """Wraps successful payloads as ``{"ok": true, "data": …}``.

    Errors arrive already enveloped from :func:`common.exceptions.envelope_exception_handler`.
    """

    def render(self, data, accepted_media_type=None, renderer_context=None):
        response = (renderer_context or {}).get("response")
        if response is not None and response.status_code < 400:
            data = {"ok": True, "data": data}
        return super().render(data, accepted_media_type, renderer_context)
