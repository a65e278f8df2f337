"""The project's middleware: static files and the choice of language."""

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponseBase
from django.middleware.locale import LocaleMiddleware
from django.utils import translation
from whitenoise.middleware import WhiteNoiseMiddleware

API_PREFIXES = ("/api/", "/v1/")


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    """WhiteNoise's static files without forcing every request through a thread.

    Django runs a sync-only middleware under ASGI by hopping to a thread and
    back, for every request. Looking a path up in WhiteNoise's table is a
    dictionary read, so this subclass also runs on the event loop.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response, *args, **kwargs) -> None:
        super().__init__(get_response, *args, **kwargs)
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if self.is_async:
            return self.__acall__(request)
        return super().__call__(request)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        if self.autorefresh:
            static_file = self.find_file(request.path_info)
        else:
            static_file = self.files.get(request.path_info)
        if static_file is not None:
            return self.serve(static_file, request)
        return await self.get_response(request)


class LanguageMiddleware(LocaleMiddleware):
    """Korean unless the user chose English.

    Pages follow the language chosen in the header menu (Django's language
    cookie), else the default, Korean: a browser's Accept-Language is not a
    choice. API clients choose with Accept-Language, as HTTP intends.
    """

    def process_request(self, request: HttpRequest) -> None:
        if request.path.startswith(API_PREFIXES):
            language = translation.get_language_from_request(request)
        else:
            chosen = request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME)
            supported = {code for code, _name in settings.LANGUAGES}
            language = chosen if chosen in supported else settings.LANGUAGE_CODE
        translation.activate(language)
        request.LANGUAGE_CODE = translation.get_language()
