from django.conf import settings
from django.urls import reverse
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView
from rest_framework_simplejwt import serializers as jwt_serializers
from rest_framework_simplejwt import views as jwt_views
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError
from rest_framework_simplejwt.tokens import RefreshToken

from taskhub.errors import ApplicationError
from taskhub.openapi import ERRORS
from taskhub.pagination import StrictCursorPagination
from taskhub.serializers import StrictFieldsMixin

from . import selectors, services
from .authentication import user_id_from_claims
from .filters import UserFilter
from .models import User
from .serializers import (
    EmailVerifySerializer,
    LogoutSerializer,
    PasswordChangeSerializer,
    RegisterSerializer,
    RegistrationAcceptedSerializer,
    UserSerializer,
    UserUpdateSerializer,
)

# The one answer to every sign-up that passes the checks on its input: made or not (a taken
# username or address), the caller learns it from the mail only (README, "Accounts").
REGISTRATION_ACCEPTED = (
    "If this username and e-mail address are free, your account is made: sign in with them. "
    "Either way, a mail to the address says what happened (and how to verify it)."
)


def _verify_url(request) -> str:
    return request.build_absolute_uri(reverse("user-verify-email"))


class RegisterView(APIView):
    """Sign up. Answers 202 with the same body whether or not the account was made (a taken
    username or address is said in a mail, not here); 400 for malformed input, a reserved
    username or a weak password; 403 when registration is switched off (REGISTRATION_OPEN=false)."""

    permission_classes = [permissions.AllowAny]
    authentication_classes = []
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "register"

    @extend_schema(request=RegisterSerializer, responses={202: RegistrationAcceptedSerializer, **ERRORS(400, 403, 429)})
    def post(self, request):
        if not settings.REGISTRATION_OPEN:
            raise ApplicationError(
                "Registration is closed on this server.", code="registration_closed", status_code=403
            )
        serializer = RegisterSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.user_register(**serializer.validated_data, verify_url=_verify_url(request))
        return Response({"detail": REGISTRATION_ACCEPTED}, status=status.HTTP_202_ACCEPTED)


class StrictTokenObtainPairSerializer(StrictFieldsMixin, jwt_serializers.TokenObtainPairSerializer):
    pass


class StrictTokenRefreshSerializer(StrictFieldsMixin, jwt_serializers.TokenRefreshSerializer):
    def validate(self, attrs):
        # simplejwt looks the token's user up with .get(): a refresh token of a deleted user
        # raised DoesNotExist (a 500), one whose user claim is no id raised in the query. Both
        # are tokens that sign nobody in: 401.
        try:
            user_id_from_claims(RefreshToken(attrs["refresh"]).payload)
        except TokenError as exc:
            raise InvalidToken(str(exc)) from exc
        try:
            return super().validate(attrs)
        except User.DoesNotExist as exc:
            raise AuthenticationFailed(self.error_messages["no_active_account"], "no_active_account") from exc


class StrictTokenVerifySerializer(StrictFieldsMixin, jwt_serializers.TokenVerifySerializer):
    pass


@extend_schema(responses={200: jwt_serializers.TokenObtainPairSerializer, **ERRORS(400, 401, 429)})
class LoginView(jwt_views.TokenObtainPairView):
    """Log in with username and password: an access token and a refresh token."""

    serializer_class = StrictTokenObtainPairSerializer
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "login"


@extend_schema(responses={200: jwt_serializers.TokenRefreshSerializer, **ERRORS(400, 401)})
class RefreshView(jwt_views.TokenRefreshView):
    """Trade a refresh token for a new pair; the old refresh token is blacklisted (rotation)."""

    serializer_class = StrictTokenRefreshSerializer


@extend_schema(responses={200: OpenApiResponse(description="The token is valid."), **ERRORS(400, 401)})
class VerifyView(jwt_views.TokenVerifyView):
    serializer_class = StrictTokenVerifySerializer


class LogoutView(APIView):
    """Log out: blacklist the refresh token. Works with an expired access token too."""

    permission_classes = [permissions.AllowAny]
    authentication_classes = []

    @extend_schema(request=LogoutSerializer, responses={204: None, **ERRORS(400, 401)})
    def post(self, request):
        serializer = LogoutSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.user_logout(refresh=serializer.validated_data["refresh"])
        return Response(status=status.HTTP_204_NO_CONTENT)


class UserPagination(StrictCursorPagination):
    ordering = "id"


@extend_schema_view(
    list=extend_schema(responses={200: UserSerializer(many=True), **ERRORS(401, 403)}),
    retrieve=extend_schema(responses={200: UserSerializer, **ERRORS(401, 403, 404)}),
)
class UserViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Users. The list and other users' details are for staff; everyone has `me`."""

    serializer_class = UserSerializer
    pagination_class = UserPagination
    permission_classes = [permissions.IsAdminUser]
    search_fields = ("username", "email", "first_name", "last_name")
    filterset_class = UserFilter

    def get_queryset(self):
        return selectors.user_list()

    @extend_schema(methods=["GET"], responses={200: UserSerializer, **ERRORS(401)}, summary="Your profile")
    @extend_schema(
        methods=["PATCH"],
        request=UserUpdateSerializer,
        responses={200: UserSerializer, **ERRORS(400, 401)},
        summary="Update your profile",
        description="A new `email` is stored as `pending_email` and a verification mail is sent to it; it "
        "becomes `email` at POST /users/me/email/verify/. A new `username` needs `current_password`.",
    )
    @action(detail=False, methods=["get", "patch"], permission_classes=[permissions.IsAuthenticated])
    def me(self, request):
        if request.method == "GET":
            return Response(UserSerializer(request.user).data)
        serializer = UserUpdateSerializer(request.user, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        user = services.user_update(user=request.user, verify_url=_verify_url(request), **serializer.validated_data)
        return Response(UserSerializer(user).data)

    @extend_schema(
        request=EmailVerifySerializer,
        responses={200: UserSerializer, **ERRORS(400, 401)},
        summary="Verify your pending e-mail address",
    )
    @action(
        detail=False,
        methods=["post"],
        url_path="me/email/verify",
        url_name="verify-email",
        permission_classes=[permissions.IsAuthenticated],
    )
    def verify_email(self, request):
        """Present the token of the verification mail: the pending address becomes your verified
        `email`. Only the user it was issued to, within EMAIL_VERIFICATION_MAX_AGE seconds."""
        serializer = EmailVerifySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = services.user_verify_email(user=request.user, **serializer.validated_data)
        return Response(UserSerializer(user).data)

    @extend_schema(
        request=PasswordChangeSerializer, responses={204: None, **ERRORS(400, 401)}, summary="Change your password"
    )
    @action(detail=False, methods=["post"], url_path="me/password", permission_classes=[permissions.IsAuthenticated])
    def change_password(self, request):
        """Change your password; every refresh token you hold is revoked."""
        serializer = PasswordChangeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.user_change_password(user=request.user, **serializer.validated_data)
        return Response(status=status.HTTP_204_NO_CONTENT)
