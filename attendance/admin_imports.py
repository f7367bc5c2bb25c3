"""Import / export in the admin centre (django-import-export) for one organisation's rows:
employees (attendance/admin.py) and event participants (events/admin.py) share it.

- Only a login that administers one organisation may import or export; its resource is
  bound to that organisation.
- A confirmation must match a preview this login made: the temporary file's name comes
  back from the browser, and the library would read (and then delete) whatever file of its
  temporary folder it names.
- A confirmation whose rows no longer validate writes nothing at all (the library's default
  would write the valid rows and drop the invalid ones), and says so.
- Every export is audited (who, format, rows, the list's filters).
"""

from __future__ import annotations

import os

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.utils.translation import gettext
from django.views.decorators.http import require_POST
from import_export.admin import ImportExportMixin

from audit.services import audit_record

PENDING_PREVIEWS_MAX = 5


def admin_organisation(request):
    # attendance.admin imports this module; its helper is read when a request comes.
    from attendance.admin import admin_organisation as organisation_of_login

    return organisation_of_login(request)


class OrganisationImportExportMixin(ImportExportMixin):
    # Set by each admin: where this login's pending previews are kept, what an export is
    # audited as, and what the rows are called in messages.
    imports_session_key: str = ""
    export_audit_action: str = ""
    rows_noun: str = ""

    def may_import_export(self, request) -> bool:
        return self.has_change_permission(request)

    def has_import_permission(self, request):
        return self.may_import_export(request) and admin_organisation(request) is not None

    def has_export_permission(self, request):
        return self.may_import_export(request) and admin_organisation(request) is not None

    def get_resource_kwargs(self, request, *args, **kwargs):
        # Both get_import_resource_kwargs and get_export_resource_kwargs come through here.
        return {"organisation": admin_organisation(request)}

    def get_import_data_kwargs(self, **kwargs):
        return {**super().get_import_data_kwargs(**kwargs), "rollback_on_validation_errors": True}

    def _changelist_redirect(self):
        return HttpResponseRedirect(
            reverse(
                "admin:{}_{}_changelist".format(*self.get_model_info()),
                current_app=self.admin_site.name,
            )
        )

    def _refuse_without_organisation(self, request):
        """None when the request may import/export; otherwise the response refusing it."""
        if admin_organisation(request) is not None:
            return None
        if not self.may_import_export(request):
            raise PermissionDenied
        self.message_user(
            request,
            gettext(
                "Import and export work on one organisation's %(rows)s, and this login "
                "administers no single organisation. Sign in as that organisation's admin."
            )
            % {"rows": self.rows_noun},
            messages.ERROR,
        )
        return self._changelist_redirect()

    def import_action(self, request, **kwargs):
        refusal = self._refuse_without_organisation(request)
        return refusal or super().import_action(request, **kwargs)

    def export_action(self, request):
        return self._refuse_without_organisation(request) or super().export_action(request)

    def get_export_data(self, file_format, request, queryset, **kwargs):
        data = super().get_export_data(file_format, request, queryset, **kwargs)
        audit_record(
            actor=request.user,
            action=self.export_audit_action,
            organisation=admin_organisation(request),
            data={
                "format": file_format.get_title(),
                "rows": queryset.count(),
                "filters": {key: request.GET.getlist(key) for key in request.GET},
            },
        )
        return data

    def get_confirm_form_initial(self, request, import_form):
        initial = super().get_confirm_form_initial(request, import_form)
        if import_form is not None:  # the preview passed: remember its file for this login
            # The confirm form cleans the name to its basename (the library writes it as a
            # full path): compare like with like.
            name = os.path.basename(initial["import_file_name"])
            pending = request.session.get(self.imports_session_key, [])
            request.session[self.imports_session_key] = [*pending, name][-PENDING_PREVIEWS_MAX:]
        return initial

    @method_decorator(require_POST)
    def process_import(self, request, **kwargs):
        refusal = self._refuse_without_organisation(request)
        if refusal is not None:
            return refusal
        if not self.has_import_permission(request):
            raise PermissionDenied
        confirm = self.get_confirm_form_class(request)(request.POST)
        name = confirm.cleaned_data["import_file_name"] if confirm.is_valid() else None
        pending = request.session.get(self.imports_session_key, [])
        if name not in pending:
            self.message_user(
                request,
                gettext(
                    "Nothing imported: this preview is no longer waiting for confirmation. "
                    "Upload the file again."
                ),
                messages.ERROR,
            )
            return self._changelist_redirect()
        request.session[self.imports_session_key] = [n for n in pending if n != name]
        try:
            return super().process_import(request, **kwargs)
        except FileNotFoundError:
            self.message_user(
                request,
                gettext("Nothing imported: the uploaded file is gone. Upload it again."),
                messages.ERROR,
            )
            return self._changelist_redirect()

    def process_result(self, result, request):
        if result.has_errors() or result.has_validation_errors():
            # Rolled back (see get_import_data_kwargs): say so instead of "Import finished".
            self.message_user(
                request,
                gettext(
                    "Nothing imported: some rows no longer pass the checks (the %(rows)s "
                    "changed since the preview). Upload the file again to see which."
                )
                % {"rows": self.rows_noun},
                messages.ERROR,
            )
            return self._changelist_redirect()
        return super().process_result(result, request)
