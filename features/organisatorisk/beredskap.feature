# language: sv
@criterion:org-readiness
Egenskap: Kommandocentralen har övat det som bara människor kan visa
  Eskalering, kommunikation och nedtidsrutin övas på varje plats under generalrepetitionen.
  Den som ansvarar intygar med namn vad som gjordes: rehearse attest PUNKT --site PLATS --by NAMN --ok.
  Utan intygande räknas scenariot som väntande, aldrig som godkänt.
  Incidenter som lyfts, kvitteras och eskaleras i konsolen (rehearse console) bedöms mot planens tider.

  @per_site
  @id:org-readiness-01
  Scenario: En testincident lyfts, kvitteras och eskaleras inom planens tider
    Givet planens tider för kvittering och eskalering
    Så kvitterades och eskalerades platsens incidenter i incidentloggen inom tiderna
    Men utan incident i loggen intygar platsens kommandocentral "eskalering": att en testincident kvitterades och eskalerades inom tiderna

  @per_site
  @id:org-readiness-02
  Scenario: Driftstartsinformationen har nått platsen
    Så intygar platsens kommandocentral "kommunikation": att informationen om driftstarten nått alla enheter på platsen

  @per_site
  @id:org-readiness-03
  Scenario: Nedtidsrutinen är övad
    Så intygar platsens kommandocentral "nedtidsrutin": att nedtidsrutinen övades med pappersblanketter och återinmatning
